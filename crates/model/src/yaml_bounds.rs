//! A linear pre-scan of YAML text that bounds the parser's work before the parser sees it.
//!
//! Two inputs cost the YAML parser far more than their size: deep flow nesting (`a: [[[[…`,
//! whose cost grows with the square of the depth in libyaml's simple-key bookkeeping) and
//! aliases of large nodes (one 500 KB scalar referenced 10,000 times expands to 5 GB). The
//! scan reads the text once, as a tokenizer would (quotes, comments and block scalars are
//! skipped), and refuses it when the flow nesting is deeper than [`MAX_YAML_FLOW_DEPTH`], when
//! it holds more than [`MAX_YAML_ALIASES`] aliases, or when the text with every alias replaced
//! by its anchored node would exceed [`MAX_YAML_EXPANDED_BYTES`].
//!
//! The extent of an anchored node is over-estimated (from the anchor to the next line indented
//! no deeper than the anchor's line), so the expanded size is an upper bound: the scan may refuse
//! what the parser would have expanded to slightly less, never the other way round.

use crate::limits::{MAX_YAML_ALIASES, MAX_YAML_EXPANDED_BYTES, MAX_YAML_FLOW_DEPTH};
use std::collections::HashMap;

/// Why a YAML text was refused before parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum YamlBoundError {
    TooDeep { line: usize },
    TooManyAliases,
    TooManyAnchors,
    TooLarge { expanded: usize },
}

impl std::fmt::Display for YamlBoundError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            YamlBoundError::TooDeep { line } => write!(
                f,
                "YAML nested deeper than {MAX_YAML_FLOW_DEPTH} flow levels ([ or {{) at line {line}"
            ),
            YamlBoundError::TooManyAliases => {
                write!(f, "YAML holds more than {MAX_YAML_ALIASES} aliases (*name)")
            }
            YamlBoundError::TooManyAnchors => {
                write!(f, "YAML holds more than {MAX_YAML_ALIASES} anchors (&name)")
            }
            YamlBoundError::TooLarge { expanded } => write!(
                f,
                "YAML aliases expand the descriptor to at least {expanded} bytes; the limit is \
                 {MAX_YAML_EXPANDED_BYTES} bytes"
            ),
        }
    }
}

/// One anchor whose node may still be open.
struct OpenAnchor {
    name: String,
    /// Byte offset of the `&`.
    at: usize,
    /// Indentation of its line: the node ends at the next line indented no deeper.
    indent: usize,
    /// Its line is a sequence item (`- &a …`).
    item: bool,
    /// What the aliases inside it (and inside anchors nested in it) expand to.
    aliased: usize,
}

/// Checks `text` against the YAML bounds; see the [module docs](self).
pub fn check_yaml_bounds(text: &str) -> Result<(), YamlBoundError> {
    let bytes = text.as_bytes();
    let mut scan = Scan {
        bytes,
        done: HashMap::new(),
        open: Vec::new(),
        total: bytes.len(),
        aliases: 0,
        anchors: 0,
    };
    scan.run()
}

struct Scan<'a> {
    bytes: &'a [u8],
    /// Expanded size of each anchor whose node is closed, by name.
    done: HashMap<String, usize>,
    /// Anchors still open, innermost last. Alias sizes are added to the innermost only and
    /// passed outwards when it closes, so each alias costs O(1).
    open: Vec<OpenAnchor>,
    total: usize,
    aliases: usize,
    anchors: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Quote {
    None,
    Single,
    Double,
}

impl Scan<'_> {
    fn run(&mut self) -> Result<(), YamlBoundError> {
        let mut flow_depth = 0usize;
        let mut quote = Quote::None;
        // Lines more indented than this belong to a block scalar (`|`, `>`) and are not YAML.
        let mut block_scalar: Option<usize> = None;
        let mut start = 0;
        let mut line_no = 0;
        while start < self.bytes.len() {
            line_no += 1;
            let end = self.bytes[start..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(self.bytes.len(), |n| start + n + 1);
            let line = &self.bytes[start..end];
            let indent = line.iter().take_while(|&&b| b == b' ').count();
            let first = line.get(indent).copied();
            let content = first.is_some_and(|b| !b.is_ascii_whitespace() && b != b'#');
            let line_start = start;
            start = end;
            if let Some(parent) = block_scalar {
                if !content || indent > parent {
                    continue;
                }
                block_scalar = None;
            }
            if content && quote == Quote::None {
                self.close_anchors(line_start, indent, first == Some(b'-'));
            }
            let mut i = 0;
            let mut last_token_start = None;
            while i < line.len() {
                let b = line[i];
                match quote {
                    Quote::Single => {
                        if b == b'\'' {
                            if line.get(i + 1) == Some(&b'\'') {
                                i += 1;
                            } else {
                                quote = Quote::None;
                            }
                        }
                        i += 1;
                        continue;
                    }
                    Quote::Double => {
                        if b == b'\\' {
                            i += 1;
                        } else if b == b'"' {
                            quote = Quote::None;
                        }
                        i += 1;
                        continue;
                    }
                    Quote::None => {}
                }
                // Flow indicators start tokens only inside a flow collection; in block context
                // `x[` is plain text.
                let token_start = i == 0
                    || matches!(line[i - 1], b' ' | b'\t')
                    || (flow_depth > 0 && matches!(line[i - 1], b'[' | b'{' | b','));
                match b {
                    b'#' if token_start => break,
                    b'\'' if token_start => quote = Quote::Single,
                    b'"' if token_start => quote = Quote::Double,
                    b'[' | b'{' if token_start || flow_depth > 0 => {
                        flow_depth += 1;
                        if flow_depth > MAX_YAML_FLOW_DEPTH {
                            return Err(YamlBoundError::TooDeep { line: line_no });
                        }
                    }
                    b']' | b'}' if flow_depth > 0 => flow_depth -= 1,
                    b'&' | b'*' if token_start => {
                        let name = name_at(&line[i + 1..]);
                        if b == b'&' {
                            // Also bounds the search of open anchors by name in `alias`.
                            self.anchors += 1;
                            if self.anchors > MAX_YAML_ALIASES {
                                return Err(YamlBoundError::TooManyAnchors);
                            }
                            self.open.push(OpenAnchor {
                                name: String::from_utf8_lossy(name).into_owned(),
                                at: line_start + i,
                                indent,
                                item: first == Some(b'-'),
                                aliased: 0,
                            });
                        } else {
                            self.alias(name, line_start + i)?;
                        }
                        i += 1 + name.len();
                        continue;
                    }
                    _ => {}
                }
                if !b.is_ascii_whitespace() && token_start {
                    last_token_start = Some(i);
                }
                i += 1;
            }
            if quote == Quote::None
                && flow_depth == 0
                && last_token_start.is_some_and(|t| is_block_scalar_header(&line[t..]))
            {
                block_scalar = Some(indent);
            }
        }
        Ok(())
    }

    /// A content line at `indent` ends the anchored nodes opened on lines indented as deep or
    /// deeper (but a mapping key's block sequence may sit at the key's own indentation).
    /// Only the innermost is tested: leaving an outer one open over-estimates, which is safe.
    fn close_anchors(&mut self, offset: usize, indent: usize, item: bool) {
        while let Some(top) = self.open.last() {
            let continues = indent == top.indent && !top.item && item;
            if indent > top.indent || continues {
                break;
            }
            if let Some(anchor) = self.open.pop() {
                let expanded = (offset - anchor.at).saturating_add(anchor.aliased);
                if let Some(outer) = self.open.last_mut() {
                    outer.aliased = outer.aliased.saturating_add(anchor.aliased);
                }
                self.done.insert(anchor.name, expanded);
            }
        }
    }

    fn alias(&mut self, name: &[u8], offset: usize) -> Result<(), YamlBoundError> {
        self.aliases += 1;
        if self.aliases > MAX_YAML_ALIASES {
            return Err(YamlBoundError::TooManyAliases);
        }
        let name = String::from_utf8_lossy(name);
        // An alias of an anchor still open (a recursive alias, which the parser refuses) is
        // bounded by its text so far.
        let size = self
            .open
            .iter()
            .rev()
            .find(|a| a.name == name)
            .map(|a| (offset - a.at).saturating_add(a.aliased))
            .or_else(|| self.done.get(name.as_ref()).copied())
            .unwrap_or(0);
        if let Some(innermost) = self.open.last_mut() {
            innermost.aliased = innermost.aliased.saturating_add(size);
        }
        self.total = self.total.saturating_add(size);
        if self.total > MAX_YAML_EXPANDED_BYTES {
            return Err(YamlBoundError::TooLarge {
                expanded: self.total,
            });
        }
        Ok(())
    }
}

/// `|`, `>-`, `|+2`…: the token that starts a block scalar.
fn is_block_scalar_header(token: &[u8]) -> bool {
    let len = token
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(token.len());
    let (indicator, rest) = token[..len].split_at(1);
    matches!(indicator, [b'|' | b'>'])
        && rest
            .iter()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-'))
}

/// An anchor or alias name: everything up to white space or a flow indicator.
fn name_at(rest: &[u8]) -> &[u8] {
    let len = rest
        .iter()
        .position(|b| b.is_ascii_whitespace() || matches!(b, b'[' | b']' | b'{' | b'}' | b','))
        .unwrap_or(rest.len());
    &rest[..len]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_nesting_is_refused_with_its_line() {
        let text = format!("a: 1\nb: {}", "[".repeat(200_000));
        assert_eq!(
            check_yaml_bounds(&text),
            Err(YamlBoundError::TooDeep { line: 2 })
        );
        let ok = format!("b: {}{}", "[".repeat(10), "]".repeat(10));
        assert_eq!(check_yaml_bounds(&ok), Ok(()));
    }

    #[test]
    fn brackets_in_quotes_comments_plain_and_block_scalars_do_not_count() {
        let deep = "[".repeat(100);
        let text = format!(
            "a: '{deep}'\nb: \"{deep}\\\"\"\nc: x{deep}\n# {deep}\nd: |\n  {deep}\n  more {deep}\ne: 1\n"
        );
        assert_eq!(check_yaml_bounds(&text), Ok(()));
    }

    #[test]
    fn one_large_scalar_aliased_many_times_is_refused() {
        let big = "x".repeat(500_000);
        let mut text = format!("big: &b {big}\nlist:\n");
        for _ in 0..100 {
            text.push_str("  - *b\n");
        }
        assert!(matches!(
            check_yaml_bounds(&text),
            Err(YamlBoundError::TooLarge { .. })
        ));
    }

    #[test]
    fn nested_aliases_multiply() {
        // The billion laughs: each level doubles ten times.
        let mut text = String::from("a0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n");
        for level in 1..9 {
            let refs = vec![format!("*a{}", level - 1); 9].join(", ");
            text.push_str(&format!("a{level}: &a{level} [{refs}]\n"));
        }
        assert!(matches!(
            check_yaml_bounds(&text),
            Err(YamlBoundError::TooLarge { .. })
        ));
    }

    #[test]
    fn too_many_aliases_are_refused() {
        let mut text = String::from("a: &a 1\nl:\n");
        for _ in 0..=MAX_YAML_ALIASES {
            text.push_str("- *a\n");
        }
        assert_eq!(
            check_yaml_bounds(&text),
            Err(YamlBoundError::TooManyAliases)
        );
    }

    #[test]
    fn ordinary_anchors_pass() {
        let text = "\
env: &env
  A: \"1\"
  B: '2'
services:
  - name: a
    env: *env
  - name: b
    env: *env
ports: &p [80, 443]
more: *p
";
        assert_eq!(check_yaml_bounds(text), Ok(()));
    }

    #[test]
    fn an_anchor_extent_ends_at_the_next_line_as_shallow() {
        // `small` ends before `big` starts: aliasing it must not count `big`.
        let big = "y".repeat(600_000);
        let mut text = format!("small: &s\n  k: v\nbig: {big}\nl:\n");
        for _ in 0..500 {
            text.push_str("  - *s\n");
        }
        assert_eq!(check_yaml_bounds(&text), Ok(()));
    }
}
