//! The query language: tag expressions with AND, OR, NOT and parentheses, plus field predicates.
//!
//! ```text
//! rust AND (pdf OR markdown) AND NOT draft
//! report name:2026 size>=1MiB created>2026-01-01 kind:image -"old stuff"
//! ```
//!
//! Grammar (juxtaposition means AND; keywords are upper case so that lower-case words stay tags):
//! ```text
//! query   := or?
//! or      := and ( ("OR" | "||") and )*
//! and     := unary ( ("AND" | "&&")? unary )*
//! unary   := ("NOT" | "!" | "-") unary | "(" or ")" | term
//! term    := WORD | "QUOTED" | FIELD ":" VALUE | FIELD OP VALUE
//! FIELD   := tag | name | kind | mime | ext | hash | size | created | modified | text
//! OP      := > | >= | < | <= | =
//! ```
//! A bare word or a quoted phrase is a tag. `text:` searches the words of the content itself
//! (its full-text index): `text:borrow` a word, `text:"borrow checker"` a phrase, `text:borr*`
//! a prefix; its words are cut by [`crate::fulltext::words`], as the index's are. Errors carry the character position where parsing
//! stopped, so a client can underline it.

use crate::model::{FileKind, normalize_tag};
use serde::Serialize;
use time::{
    Date, OffsetDateTime, format_description::well_known::Rfc3339, macros::format_description,
};

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// The empty query: every file.
    All,
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Pred(Predicate),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// The file carries this (normalized) tag, automatic or user.
    Tag(String),
    /// The file's name contains this text, case-insensitively.
    NameContains(String),
    Kind(FileKind),
    /// MIME type equals, or starts with the part before `*` (`image/*`).
    Mime {
        prefix: String,
        exact: bool,
    },
    /// The name ends with `.ext` (case-insensitive).
    Ext(String),
    /// The content hash starts with this lowercase hex.
    HashPrefix(String),
    /// Size in bytes, bounds inclusive.
    Size {
        min: Option<u64>,
        max: Option<u64>,
    },
    /// Unix milliseconds, start inclusive, end exclusive.
    Time {
        field: TimeField,
        start: Option<i64>,
        end: Option<i64>,
    },
    /// The content's text contains these words, in this order (one word, or a phrase).
    Text(TextTerm),
}

/// A full-text term: words (letters and digits only, lower case: see
/// [`crate::fulltext::words`]) that must follow each other; the last one may be a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextTerm {
    pub words: Vec<String>,
    /// The last word is a prefix (`text:borr*`).
    pub prefix: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeField {
    Created,
    Modified,
}

/// Where and why a query did not parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message} (at character {position})")]
pub struct QueryError {
    /// Character (not byte) offset into the query, 0-based.
    pub position: usize,
    pub message: String,
}

/// Longest query accepted, in bytes; a bound on parser work and SQL size.
pub const MAX_QUERY_BYTES: usize = 4096;
/// Deepest nesting of parentheses and NOTs.
pub const MAX_DEPTH: usize = 64;
/// Most terms (tags and field predicates) in one query, counted after parsing: each is a
/// condition the database evaluates per file, so this bounds a query's cost. Every expression
/// the server runs, a parsed query or one it built (a graph's `around=`), passes [`bound`].
pub const MAX_TERMS: usize = 64;
/// Most words in one `text:` phrase.
pub const MAX_TEXT_WORDS: usize = 16;
/// Longest word of a `text:` term, in characters (no indexed word is longer, in practice).
pub const MAX_TEXT_WORD_CHARS: usize = 64;

/// Parses a query. An error is one line: the parts of the query it quotes have their control
/// characters escaped (`\n`, `\u{0}`).
pub fn parse(input: &str) -> Result<Expr, QueryError> {
    parse_query(input).map_err(|mut e| {
        if e.message.chars().any(char::is_control) {
            e.message = e
                .message
                .chars()
                .map(|c| {
                    if c.is_control() {
                        c.escape_default().to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect();
        }
        e
    })
}

fn parse_query(input: &str) -> Result<Expr, QueryError> {
    if input.len() > MAX_QUERY_BYTES {
        return Err(QueryError {
            position: 0,
            message: format!(
                "query is {} bytes; at most {MAX_QUERY_BYTES} are allowed",
                input.len()
            ),
        });
    }
    let tokens = lex(input)?;
    let mut p = Parser {
        tokens,
        pos: 0,
        depth: 0,
        end: input.chars().count(),
    };
    if p.tokens.is_empty() {
        return Ok(Expr::All);
    }
    let e = p.or()?;
    if let Some(t) = p.peek() {
        let msg = match t.tok {
            Tok::RParen => "unmatched ')'".to_string(),
            _ => format!("unexpected {}", t.tok.describe()),
        };
        return Err(p.err_at(t.pos, msg));
    }
    bound(&e)?;
    Ok(e)
}

/// Refuses an expression of more than [`MAX_TERMS`] terms, naming the limit.
pub fn bound(e: &Expr) -> Result<(), QueryError> {
    let n = e.term_count();
    if n > MAX_TERMS {
        return Err(QueryError {
            position: 0,
            message: format!("{n} terms; at most {MAX_TERMS} (MAX_TERMS) are allowed"),
        });
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    And,
    Or,
    Not,
    /// A term, with whether it was quoted (quoted text is always a tag).
    Word {
        text: String,
        quoted: bool,
    },
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::And => "AND".into(),
            Tok::Or => "OR".into(),
            Tok::Not => "NOT".into(),
            Tok::Word { text, .. } => format!("'{text}'"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// Character offset of the token's start.
    pos: usize,
}

fn lex(input: &str) -> Result<Vec<Token>, QueryError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        match c {
            '(' => {
                out.push(Token {
                    tok: Tok::LParen,
                    pos: i,
                });
                i += 1;
            }
            ')' => {
                out.push(Token {
                    tok: Tok::RParen,
                    pos: i,
                });
                i += 1;
            }
            '"' => {
                let (text, next) = quoted(&chars, i)?;
                out.push(Token {
                    tok: Tok::Word { text, quoted: true },
                    pos: start,
                });
                i = next;
            }
            '!' | '-'
                if i + 1 < chars.len() && !chars[i + 1].is_whitespace() && chars[i + 1] != ')' =>
            {
                out.push(Token {
                    tok: Tok::Not,
                    pos: i,
                });
                i += 1;
            }
            _ => {
                // A bare word runs to white space or a parenthesis; `field:"quoted value"` keeps
                // its quoted part.
                let mut text = String::new();
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && chars[i] != '('
                    && chars[i] != ')'
                {
                    if chars[i] == '"' {
                        if text.ends_with(':')
                            || text.ends_with('=')
                            || text.ends_with('>')
                            || text.ends_with('<')
                        {
                            let (q, next) = quoted(&chars, i)?;
                            text.push('\u{0}'); // marks "the value was quoted"; cannot occur in input words
                            text.push_str(&q);
                            i = next;
                            break;
                        }
                        return Err(QueryError {
                            position: i,
                            message: "a quote may only start a word or a field's value".into(),
                        });
                    }
                    text.push(chars[i]);
                    i += 1;
                }
                let tok = match text.as_str() {
                    "AND" | "&&" => Tok::And,
                    "OR" | "||" => Tok::Or,
                    "NOT" => Tok::Not,
                    _ => Tok::Word {
                        text,
                        quoted: false,
                    },
                };
                out.push(Token { tok, pos: start });
            }
        }
    }
    Ok(out)
}

/// Reads a quoted string starting at the opening quote; `\"` and `\\` escape.
fn quoted(chars: &[char], open: usize) -> Result<(String, usize), QueryError> {
    let mut s = String::new();
    let mut i = open + 1;
    while i < chars.len() {
        match chars[i] {
            '"' => return Ok((s, i + 1)),
            '\\' if i + 1 < chars.len() => {
                s.push(chars[i + 1]);
                i += 2;
            }
            c => {
                s.push(c);
                i += 1;
            }
        }
    }
    Err(QueryError {
        position: open,
        message: "unclosed quote".into(),
    })
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }
    fn err_at(&self, position: usize, message: impl Into<String>) -> QueryError {
        QueryError {
            position,
            message: message.into(),
        }
    }
    fn here(&self) -> usize {
        self.peek().map_or(self.end, |t| t.pos)
    }

    fn or(&mut self) -> Result<Expr, QueryError> {
        let mut parts = vec![self.and()?];
        while matches!(self.peek(), Some(Token { tok: Tok::Or, .. })) {
            self.pos += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap()
        } else {
            Expr::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Expr, QueryError> {
        let mut parts = vec![self.unary()?];
        loop {
            match self.peek().map(|t| &t.tok) {
                Some(Tok::And) => {
                    self.pos += 1;
                    parts.push(self.unary()?);
                }
                Some(Tok::Word { .. } | Tok::Not | Tok::LParen) => parts.push(self.unary()?),
                _ => break,
            }
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap()
        } else {
            Expr::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        let Some(t) = self.peek().cloned() else {
            return Err(self.err_at(
                self.end,
                "expected a tag, a field or '(' but the query ended",
            ));
        };
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err_at(t.pos, format!("nested more than {MAX_DEPTH} deep")));
        }
        let r = match t.tok {
            Tok::Not => {
                self.pos += 1;
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Tok::LParen => {
                self.pos += 1;
                if matches!(
                    self.peek(),
                    Some(Token {
                        tok: Tok::RParen,
                        ..
                    })
                ) {
                    return Err(self.err_at(self.here(), "empty parentheses"));
                }
                let inner = self.or()?;
                match self.peek() {
                    Some(Token {
                        tok: Tok::RParen, ..
                    }) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    _ => Err(self.err_at(t.pos, "unclosed '('")),
                }
            }
            Tok::Word { text, quoted } => {
                self.pos += 1;
                term(&text, quoted, t.pos).map(Expr::Pred)
            }
            ref other => Err(self.err_at(
                t.pos,
                format!(
                    "expected a tag, a field or '(' but found {}",
                    other.describe()
                ),
            )),
        };
        self.depth -= 1;
        r
    }
}

const FIELDS: &str = "tag, name, kind, mime, ext, hash, size, created, modified, text";

fn term(text: &str, quoted: bool, pos: usize) -> Result<Predicate, QueryError> {
    let err = |offset: usize, message: String| QueryError {
        position: pos + offset,
        message,
    };
    if quoted {
        return normalize_tag(text)
            .map(Predicate::Tag)
            .map_err(|e| err(0, e.to_string()));
    }
    // Find the field operator: the first ':', '<', '>' or '='.
    let Some(op_at) = text.find([':', '<', '>', '=']) else {
        return normalize_tag(text)
            .map(Predicate::Tag)
            .map_err(|e| err(0, e.to_string()));
    };
    let field = &text[..op_at];
    let rest = &text[op_at..];
    // Whether the value was quoted: a quoted value is a phrase, never a prefix.
    let value_quoted = rest[1..].starts_with('\u{0}');
    let (op, value) = if let Some(v) = rest.strip_prefix(">=") {
        (">=", v)
    } else if let Some(v) = rest.strip_prefix("<=") {
        ("<=", v)
    } else {
        rest.split_at(1)
    };
    let value_offset = text[..text.len() - value.len()].chars().count();
    // A value that was quoted in the input arrives behind a NUL marker.
    let value = value.strip_prefix('\u{0}').unwrap_or(value);
    if value.is_empty() {
        return Err(err(value_offset, format!("'{field}{op}' needs a value")));
    }
    let verr = |m: String| err(value_offset, m);
    let only_colon = |f: &str| -> Result<(), QueryError> {
        if op == ":" || op == "=" {
            Ok(())
        } else {
            Err(err(
                field.chars().count(),
                format!("'{f}' takes ':' (comparisons are for size, created and modified)"),
            ))
        }
    };
    match field.to_ascii_lowercase().as_str() {
        "tag" => {
            only_colon("tag")?;
            normalize_tag(value)
                .map(Predicate::Tag)
                .map_err(|e| verr(e.to_string()))
        }
        "name" => {
            only_colon("name")?;
            Ok(Predicate::NameContains(value.to_lowercase()))
        }
        "kind" => {
            only_colon("kind")?;
            FileKind::parse(&value.to_lowercase())
                .map(Predicate::Kind)
                .ok_or_else(|| {
                    verr(format!(
                        "unknown kind '{value}'; kinds are {}",
                        FileKind::ALL.map(|k| k.as_str()).join(", ")
                    ))
                })
        }
        "mime" => {
            only_colon("mime")?;
            let v = value.to_lowercase();
            Ok(match v.strip_suffix('*') {
                Some(p) => Predicate::Mime {
                    prefix: p.to_string(),
                    exact: false,
                },
                None => Predicate::Mime {
                    prefix: v,
                    exact: true,
                },
            })
        }
        "ext" => {
            only_colon("ext")?;
            Ok(Predicate::Ext(value.trim_start_matches('.').to_lowercase()))
        }
        "hash" => {
            only_colon("hash")?;
            let v = value.to_lowercase();
            if v.is_empty() || v.len() > 64 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(verr(format!("'{value}' is not a hex hash prefix")));
            }
            Ok(Predicate::HashPrefix(v))
        }
        "size" => {
            let n = parse_size(value).map_err(verr)?;
            let (min, max) = match op {
                ">" => (Some(n.saturating_add(1)), None),
                ">=" => (Some(n), None),
                "<" => {
                    if n == 0 {
                        return Err(verr("no file is smaller than 0 bytes".into()));
                    }
                    (None, Some(n - 1))
                }
                "<=" => (None, Some(n)),
                _ => (Some(n), Some(n)),
            };
            Ok(Predicate::Size { min, max })
        }
        "created" | "modified" => {
            let field = if field.eq_ignore_ascii_case("created") {
                TimeField::Created
            } else {
                TimeField::Modified
            };
            let (t0, t1) = parse_time(value).map_err(verr)?;
            let (start, end) = match op {
                ">" => (Some(t1), None),
                ">=" => (Some(t0), None),
                "<" => (None, Some(t0)),
                "<=" => (None, Some(t1)),
                _ => (Some(t0), Some(t1)),
            };
            Ok(Predicate::Time { field, start, end })
        }
        "text" => {
            only_colon("text")?;
            text_term(value, value_quoted).map_err(verr)
        }
        _ => Err(err(
            0,
            format!(
                "unknown field '{field}'; fields are {FIELDS} (put a tag that contains '{}' in quotes)",
                &rest[..1]
            ),
        )),
    }
}

/// The value of `text:`: its words, bounded; an unquoted value ending in `*` is a prefix.
fn text_term(value: &str, quoted: bool) -> Result<Predicate, String> {
    let (value, prefix) = match value.strip_suffix('*') {
        Some(v) if !quoted => (v, true),
        _ => (value, false),
    };
    let words = crate::fulltext::words(value);
    if words.is_empty() {
        return Err(format!(
            "'text:' needs a word of letters or digits, not '{value}'"
        ));
    }
    if words.len() > MAX_TEXT_WORDS {
        return Err(format!(
            "a text phrase has at most {MAX_TEXT_WORDS} words, not {}",
            words.len()
        ));
    }
    if let Some(w) = words
        .iter()
        .find(|w| w.chars().count() > MAX_TEXT_WORD_CHARS)
    {
        return Err(format!(
            "a text word has at most {MAX_TEXT_WORD_CHARS} characters; '{}…' is longer",
            w.chars().take(16).collect::<String>()
        ));
    }
    Ok(Predicate::Text(TextTerm { words, prefix }))
}

/// `10`, `1.5MB`, `4KiB`, `2g`: decimal units are powers of 1000, `i` units of 1024, a bare
/// `k`/`m`/`g`/`t` is binary.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let lower = s.to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    let mult: f64 = match unit {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024f64.powi(2),
        "g" | "gib" => 1024f64.powi(3),
        "t" | "tib" => 1024f64.powi(4),
        _ => {
            return Err(format!(
                "unknown size unit '{unit}' (use B, KB, MB, GB, KiB, MiB, GiB)"
            ));
        }
    };
    let n: f64 = num.parse().map_err(|_| format!("'{s}' is not a size"))?;
    let bytes = (n * mult).round();
    if !(0.0..=u64::MAX as f64).contains(&bytes) {
        return Err(format!("size '{s}' is out of range"));
    }
    Ok(bytes as u64)
}

/// A size for people, in binary units: `512 B`, `1.5 KiB`, `4.0 GiB` (what [`parse_size`] reads
/// back, to a tenth).
pub fn human_size(n: u64) -> String {
    const U: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

/// A date (`2026-01-31`, the whole day in UTC) or an RFC 3339 instant, as the half-open
/// interval of unix milliseconds it covers.
fn parse_time(s: &str) -> Result<(i64, i64), String> {
    let ms = |t: OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok((ms(t), ms(t) + 1));
    }
    if let Ok(d) = Date::parse(s, format_description!("[year]-[month]-[day]")) {
        let start = d.midnight().assume_utc();
        return Ok((ms(start), ms(start) + 86_400_000));
    }
    if let Ok(d) = Date::parse(
        &format!("{s}-01"),
        format_description!("[year]-[month]-[day]"),
    ) {
        let start = d.midnight().assume_utc();
        let next = if d.month() == time::Month::December {
            Date::from_calendar_date(d.year() + 1, time::Month::January, 1)
        } else {
            Date::from_calendar_date(d.year(), d.month().next(), 1)
        }
        .map_err(|e| e.to_string())?;
        return Ok((ms(start), ms(next.midnight().assume_utc())));
    }
    if s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()) {
        let y: i32 = s.parse().map_err(|_| "bad year".to_string())?;
        let a = Date::from_calendar_date(y, time::Month::January, 1).map_err(|e| e.to_string())?;
        let b =
            Date::from_calendar_date(y + 1, time::Month::January, 1).map_err(|e| e.to_string())?;
        return Ok((ms(a.midnight().assume_utc()), ms(b.midnight().assume_utc())));
    }
    Err(format!(
        "'{s}' is not a date (use 2026, 2026-01, 2026-01-31 or RFC 3339)"
    ))
}

impl Expr {
    /// The tags a query names, positive or negative: used to seed a graph view.
    pub fn tags(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.walk(&mut |p| {
            if let Predicate::Tag(t) = p {
                out.push(t.as_str());
            }
        });
        out
    }
    /// The text terms that can make a file match (those not under a NOT): what ranking and
    /// snippets look for.
    pub fn text_terms(&self) -> Vec<&TextTerm> {
        fn go<'a>(e: &'a Expr, negated: bool, out: &mut Vec<&'a TextTerm>) {
            match e {
                Expr::All => {}
                Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| go(e, negated, out)),
                Expr::Not(e) => go(e, !negated, out),
                Expr::Pred(Predicate::Text(t)) if !negated => out.push(t),
                Expr::Pred(_) => {}
            }
        }
        let mut out = Vec::new();
        go(self, false, &mut out);
        out
    }
    /// How many terms (predicates) the expression has.
    pub fn term_count(&self) -> usize {
        let mut n = 0;
        self.walk(&mut |_| n += 1);
        n
    }
    fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Predicate)) {
        match self {
            Expr::All => {}
            Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| e.walk(f)),
            Expr::Not(e) => e.walk(f),
            Expr::Pred(p) => f(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(s: &str) -> Expr {
        Expr::Pred(Predicate::Tag(s.into()))
    }

    #[test]
    fn errors_are_one_line_whatever_they_quote() {
        for q in [
            "modified<\"2026\n01\"",
            "created>x\0y",
            "kind:\"a\nb\"",
            "size>\"1\rZB\"",
        ] {
            let e = parse(q).unwrap_err();
            assert!(!e.message.chars().any(char::is_control), "{q:?}: {e:?}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
        let e = parse("modified<\"2026\n01\"").unwrap_err();
        assert!(e.message.contains("2026\\n01"), "{e:?}");
    }

    #[test]
    fn precedence_and_implicit_and() {
        assert_eq!(
            parse("rust AND (pdf OR markdown) AND NOT draft").unwrap(),
            Expr::And(vec![
                tag("rust"),
                Expr::Or(vec![tag("pdf"), tag("markdown")]),
                Expr::Not(Box::new(tag("draft"))),
            ])
        );
        assert_eq!(
            parse("a b OR c").unwrap(),
            Expr::Or(vec![Expr::And(vec![tag("a"), tag("b")]), tag("c")])
        );
        assert_eq!(
            parse("-a !b").unwrap(),
            Expr::And(vec![
                Expr::Not(Box::new(tag("a"))),
                Expr::Not(Box::new(tag("b")))
            ])
        );
        assert_eq!(parse("machine-learning").unwrap(), tag("machine-learning"));
        assert_eq!(parse("  ").unwrap(), Expr::All);
        assert_eq!(
            parse("\"Big Data\" and").unwrap(),
            Expr::And(vec![tag("big data"), tag("and")])
        );
        assert_eq!(
            parse("机器 学习").unwrap(),
            Expr::And(vec![tag("机器"), tag("学习")])
        );
    }

    #[test]
    fn terms_are_bounded() {
        let at_limit = vec!["t"; MAX_TERMS].join(" ");
        assert_eq!(parse(&at_limit).unwrap().term_count(), MAX_TERMS);
        // ~600 tags fit in the byte limit; they are refused by the term limit, which is named.
        let many = (0..600)
            .map(|i| format!("-t{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert!(many.len() <= MAX_QUERY_BYTES);
        let e = parse(&many).unwrap_err();
        assert!(e.message.contains("600 terms"), "{e}");
        assert!(e.message.contains("MAX_TERMS"), "{e}");
        let built = Expr::Or((0..=MAX_TERMS).map(|i| tag(&format!("t{i}"))).collect());
        assert!(bound(&built).is_err());
    }

    #[test]
    fn fields() {
        assert_eq!(
            parse("size>=1KiB size<1kb").unwrap(),
            Expr::And(vec![
                Expr::Pred(Predicate::Size {
                    min: Some(1024),
                    max: None
                }),
                Expr::Pred(Predicate::Size {
                    min: None,
                    max: Some(999)
                }),
            ])
        );
        assert_eq!(
            parse("name:\"annual report\"").unwrap(),
            Expr::Pred(Predicate::NameContains("annual report".into()))
        );
        assert_eq!(
            parse("mime:image/*").unwrap(),
            Expr::Pred(Predicate::Mime {
                prefix: "image/".into(),
                exact: false
            })
        );
        assert_eq!(
            parse("kind:Image").unwrap(),
            Expr::Pred(Predicate::Kind(FileKind::Image))
        );
        assert_eq!(parse("tag:AND").unwrap(), tag("and"));
        let Expr::Pred(Predicate::Time { start, end, field }) =
            parse("created:2026-01-02").unwrap()
        else {
            panic!()
        };
        assert_eq!(field, TimeField::Created);
        assert_eq!(end.unwrap() - start.unwrap(), 86_400_000);
        let Expr::Pred(Predicate::Time { start, end, .. }) = parse("modified>2026").unwrap() else {
            panic!()
        };
        assert_eq!((start, end), (Some(1_798_761_600_000), None));
    }

    #[test]
    fn errors_have_positions() {
        let e = |q: &str| parse(q).unwrap_err();
        assert_eq!(e("rust AND").position, 8);
        assert_eq!(
            e("rust AND").message,
            "expected a tag, a field or '(' but the query ended"
        );
        assert_eq!(e("(a OR b").position, 0);
        assert_eq!(e("a)").position, 1);
        assert_eq!(e("a OR OR b").position, 5);
        assert_eq!(
            e("foo:bar").message.split(';').next().unwrap(),
            "unknown field 'foo'"
        );
        assert_eq!(e("x size>lots").position, 7);
        assert_eq!(e("中文 \"abc").position, 3);
        assert_eq!(e("()").message, "empty parentheses");
        assert_eq!(e("name>3").position, 4);
        assert!(e(&"(".repeat(100)).message.contains("nested"));
        assert!(e(&"a ".repeat(3000)).message.contains("at most"));
    }

    #[test]
    fn text_terms() {
        let text = |words: &[&str], prefix| {
            Expr::Pred(Predicate::Text(TextTerm {
                words: words.iter().map(|w| w.to_string()).collect(),
                prefix,
            }))
        };
        assert_eq!(parse("text:Borrow").unwrap(), text(&["borrow"], false));
        assert_eq!(parse("text:borr*").unwrap(), text(&["borr"], true));
        assert_eq!(
            parse("text:\"Borrow checker\"").unwrap(),
            text(&["borrow", "checker"], false)
        );
        assert_eq!(parse("text:\"a*\"").unwrap(), text(&["a"], false));
        assert_eq!(
            parse("text:机器学习").unwrap(),
            text(&["机器", "学习"], false)
        );
        let q = parse("text:borrow AND kind:document AND NOT draft NOT text:x").unwrap();
        assert_eq!(q.text_terms().len(), 1);
        // Injection: the database's own syntax never reaches it, only words.
        assert_eq!(parse("text:\"a\" OR x NEAR(").unwrap_err().position, 19);
        assert_eq!(
            parse("text:\"a\" OR x NEAR()").unwrap_err().message,
            "empty parentheses"
        );
        assert_eq!(
            parse("text:\"a OR x NEAR( * ^ :\"").unwrap(),
            text(&["a", "or", "x", "near"], false)
        );
        let e = |q: &str| parse(q).unwrap_err();
        assert_eq!(e("x text:\"unclosed").position, 7);
        assert_eq!(e("x text:\"unclosed").message, "unclosed quote");
        assert_eq!(e("x text:!!!").position, 7);
        assert!(
            e(&format!("text:{}", "a".repeat(65)))
                .message
                .contains("at most 64")
        );
        assert!(
            e(&format!("text:\"{}\"", "a ".repeat(17)))
                .message
                .contains("at most 16")
        );
        assert!(e("text>a").message.contains("takes ':'"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1.5MB"), Ok(1_500_000));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert!(parse_size("1XB").is_err());
        assert!(parse_size("").is_err());
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(1 << 30), "1.0 GiB");
        assert_eq!(
            parse_size(&human_size(3 << 20).replace(' ', "")),
            Ok(3 << 20)
        );
    }
}
