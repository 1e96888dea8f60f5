//! The NGSI-LD query language (ETSI GS CIM 009 §4.9), the subset Canopy evaluates: `;`
//! (and), `|` (or), parentheses, `attr` (present), `attr==v`, `!=`, `<`, `<=`, `>`, `>=`,
//! `~=` (regular expression), lists (`attr=="a","b"`) and ranges (`attr==1..5`) for `==`
//! and `!=`, and `attr[key]` for a member of an object value (`labels[zone]=="edge"`).
//! Values are numbers, `true`/`false`, or strings, quoted (`"Running"`) or bare. Pure.

use super::entity::Entity;
use serde_json::Value;

/// The longest `q` accepted, and the deepest nesting: a query is evaluated against every
/// entity, so its size is bounded.
const MAX_QUERY_BYTES: usize = 4096;
const MAX_DEPTH: usize = 16;
/// What a compiled `~=` pattern may cost (bytes of compiled program).
const MAX_REGEX_SIZE: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub enum Query {
    And(Vec<Query>),
    Or(Vec<Query>),
    Exists(Path),
    Compare(Path, Op, Operand),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    pub attribute: String,
    /// Members inside the value (`attr[a.b]`).
    pub members: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Equal,
    Unequal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Matches,
    NotMatches,
}

#[derive(Debug, Clone)]
pub enum Operand {
    Values(Vec<Value>),
    Range(Value, Value),
    Pattern(regex::Regex),
}

pub fn parse(text: &str) -> Result<Query, String> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(format!("q is longer than {MAX_QUERY_BYTES} bytes"));
    }
    let mut parser = Parser {
        text,
        at: 0,
        depth: 0,
    };
    let query = parser.or()?;
    if parser.at < text.len() {
        return Err(format!(
            "unexpected {:?} at offset {}",
            &text[parser.at..],
            parser.at
        ));
    }
    Ok(query)
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn eat(&mut self, token: &str) -> bool {
        if self.rest().starts_with(token) {
            self.at += token.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Query, String> {
        let mut terms = vec![self.and()?];
        while self.eat("|") {
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Query::Or(terms)
        })
    }

    fn and(&mut self) -> Result<Query, String> {
        let mut terms = vec![self.term()?];
        while self.eat(";") {
            terms.push(self.term()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Query::And(terms)
        })
    }

    fn term(&mut self) -> Result<Query, String> {
        if self.eat("(") {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(format!("q nests deeper than {MAX_DEPTH} parentheses"));
            }
            let inner = self.or()?;
            if !self.eat(")") {
                return Err(format!("missing ')' at offset {}", self.at));
            }
            self.depth -= 1;
            return Ok(inner);
        }
        let path = self.path()?;
        let op = [
            ("==", Op::Equal),
            ("!=", Op::Unequal),
            ("!~=", Op::NotMatches),
            ("~=", Op::Matches),
            (">=", Op::GreaterOrEqual),
            ("<=", Op::LessOrEqual),
            (">", Op::Greater),
            ("<", Op::Less),
        ]
        .into_iter()
        .find(|(token, _)| self.rest().starts_with(token));
        let Some((token, op)) = op else {
            return Ok(Query::Exists(path));
        };
        self.at += token.len();
        let raw = self.operand_text();
        if raw.is_empty() {
            return Err(format!("{token} needs a value at offset {}", self.at));
        }
        let operand = match op {
            Op::Matches | Op::NotMatches => {
                let pattern = unquote(raw);
                regex::RegexBuilder::new(&pattern)
                    .size_limit(MAX_REGEX_SIZE)
                    .build()
                    .map(Operand::Pattern)
                    .map_err(|e| format!("invalid pattern {pattern:?}: {e}"))?
            }
            Op::Equal | Op::Unequal => match raw.split_once("..") {
                Some((low, high)) if !raw.starts_with('"') => {
                    Operand::Range(literal(low), literal(high))
                }
                _ => Operand::Values(split_list(raw).into_iter().map(literal).collect()),
            },
            _ => Operand::Values(vec![literal(raw)]),
        };
        Ok(Query::Compare(path, op, operand))
    }

    fn path(&mut self) -> Result<Path, String> {
        let start = self.at;
        let name_len = self
            .rest()
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '-'))
            .unwrap_or(self.rest().len());
        if name_len == 0 {
            return Err(format!("expected an attribute name at offset {start}"));
        }
        let attribute = self.rest()[..name_len].to_string();
        self.at += name_len;
        let mut members = Vec::new();
        if self.eat("[") {
            let Some(end) = self.rest().find(']') else {
                return Err(format!("missing ']' after offset {}", self.at));
            };
            members = self.rest()[..end].split('.').map(str::to_string).collect();
            if members.iter().any(String::is_empty) {
                return Err(format!("an empty member name in {attribute}[...]"));
            }
            self.at += end + 1;
        }
        Ok(Path { attribute, members })
    }

    /// The value text up to the next `;`, `|` or `)` outside quotes.
    fn operand_text(&mut self) -> &'a str {
        let text: &'a str = self.text;
        let rest = &text[self.at..];
        let mut quoted = false;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            match c {
                '"' => quoted = !quoted,
                ';' | '|' | ')' if !quoted => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let start = self.at;
        self.at += end;
        &text[start..start + end]
    }
}

/// `"a","b"` → `["\"a\"", "\"b\""]`, commas inside quotes kept.
fn split_list(raw: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in raw.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&raw[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&raw[start..]);
    parts
}

fn unquote(raw: &str) -> String {
    raw.strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw)
        .to_string()
}

fn literal(raw: &str) -> Value {
    if raw.starts_with('"') {
        return Value::String(unquote(raw));
    }
    match raw {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => raw
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(raw.to_string())),
    }
}

impl Query {
    pub fn matches(&self, entity: &Entity) -> bool {
        match self {
            Query::And(all) => all.iter().all(|q| q.matches(entity)),
            Query::Or(any) => any.iter().any(|q| q.matches(entity)),
            Query::Exists(path) => path.resolve(entity).is_some(),
            Query::Compare(path, op, operand) => path
                .resolve(entity)
                .is_some_and(|value| compare(value, *op, operand)),
        }
    }
}

impl Path {
    fn resolve<'e>(&self, entity: &'e Entity) -> Option<&'e Value> {
        let mut value = entity.value_of(&self.attribute)?;
        for member in &self.members {
            value = value.get(member)?;
        }
        Some(value)
    }
}

fn compare(value: &Value, op: Op, operand: &Operand) -> bool {
    // An array value matches when one of its elements does (e.g. `containerTechnology`).
    if let Value::Array(items) = value
        && !matches!(op, Op::Unequal | Op::NotMatches)
    {
        return items.iter().any(|item| compare(item, op, operand));
    }
    match (op, operand) {
        (Op::Equal, Operand::Values(any)) => any.iter().any(|v| equal(value, v)),
        (Op::Unequal, Operand::Values(none)) => !none.iter().any(|v| equal(value, v)),
        (Op::Equal, Operand::Range(low, high)) => in_range(value, low, high),
        (Op::Unequal, Operand::Range(low, high)) => !in_range(value, low, high),
        (Op::Matches, Operand::Pattern(re)) => value.as_str().is_some_and(|s| re.is_match(s)),
        (Op::NotMatches, Operand::Pattern(re)) => value.as_str().is_none_or(|s| !re.is_match(s)),
        (_, Operand::Values(one)) => {
            one.first()
                .and_then(|v| order(value, v))
                .is_some_and(|ordering| match op {
                    Op::Less => ordering.is_lt(),
                    Op::LessOrEqual => ordering.is_le(),
                    Op::Greater => ordering.is_gt(),
                    Op::GreaterOrEqual => ordering.is_ge(),
                    _ => false,
                })
        }
        _ => false,
    }
}

fn equal(value: &Value, wanted: &Value) -> bool {
    match (value, wanted) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        // A bare `true` or `5` also matches the string "true" or "5".
        (Value::String(a), Value::Bool(b)) => a == if *b { "true" } else { "false" },
        (Value::String(a), Value::Number(n)) => a.parse::<f64>().ok() == n.as_f64(),
        _ => value == wanted,
    }
}

fn order(value: &Value, bound: &Value) -> Option<std::cmp::Ordering> {
    match (value, bound) {
        (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

fn in_range(value: &Value, low: &Value, high: &Value) -> bool {
    order(value, low).is_some_and(|o| o.is_ge()) && order(value, high).is_some_and(|o| o.is_le())
}

/// A `q` as ngsildclient's subscription helper writes it (percent-encoded), decoded;
/// text without `%` is returned as it is.
pub fn percent_decoded(text: &str) -> Result<String, String> {
    if !text.contains('%') {
        return Ok(text.to_string());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("invalid percent-encoding at offset {i}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-encoding that is not UTF-8".to_string())
}

#[cfg(test)]
#[path = "query_tests.rs"]
mod tests;
