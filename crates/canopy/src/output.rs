//! Human output: aligned tables like kubectl's, and ages.

use time::OffsetDateTime;

pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: Vec<&'static str>) -> Table {
        Table {
            headers,
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn headers(&self) -> &[&'static str] {
        &self.headers
    }

    pub fn rows(&self) -> &[Vec<String>] {
        &self.rows
    }

    /// Each column's width: its widest cell or header.
    pub fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        widths
    }

    pub fn render(&self) -> String {
        let widths = self.widths();
        let headers: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        let mut out = line(&headers, &widths);
        for row in &self.rows {
            out.push('\n');
            out.push_str(&line(row, &widths));
        }
        out
    }
}

/// One table line: cells padded to `widths`, three spaces apart (the last one unpadded).
pub fn line(cells: &[String], widths: &[usize]) -> String {
    let last = cells.len().saturating_sub(1);
    let mut text = String::new();
    for (i, cell) in cells.iter().enumerate() {
        let width = widths.get(i).copied().unwrap_or(0);
        if i == last {
            text.push_str(cell);
        } else {
            text.push_str(&format!("{cell:<width$}   "));
        }
    }
    text.trim_end().to_string()
}

/// `5s`, `3m`, `2h`, `4d`, as kubectl shows ages.
pub fn age(since: OffsetDateTime) -> String {
    let seconds = (OffsetDateTime::now_utc() - since).whole_seconds().max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// RFC 3339 with its age: `2026-11-23T10:09:11Z (5m ago)`.
pub fn timestamp(at: OffsetDateTime) -> String {
    let text = at
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| at.to_string());
    format!("{text} ({} ago)", age(at))
}

pub fn or_dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_the_widest_cell() {
        let mut table = Table::new(vec!["NAME", "STATE"]);
        table.row(vec!["a-long-name".into(), "Running".into()]);
        table.row(vec!["b".into(), "Pending".into()]);
        assert_eq!(
            table.render(),
            "NAME          STATE\na-long-name   Running\nb             Pending"
        );
    }

    #[test]
    fn ages_use_the_largest_sensible_unit() {
        let now = OffsetDateTime::now_utc();
        assert_eq!(age(now - time::Duration::seconds(30)), "30s");
        assert_eq!(age(now - time::Duration::minutes(5)), "5m");
        assert_eq!(age(now - time::Duration::hours(5)), "5h");
        assert_eq!(age(now - time::Duration::days(3)), "3d");
        assert_eq!(age(now + time::Duration::seconds(10)), "0s");
    }
}
