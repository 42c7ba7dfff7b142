//! Bounds on schema text, checked before any parser sees it, and the thread parsers run on.
//!
//! The parsers (`protox-parse`, `serde_json` + `apache-avro`, `jsonschema`) recurse once per
//! nesting level. A stack overflow aborts the whole process from whichever thread it happens on
//! (broker included) and cannot be caught, so the defence is arithmetic: a cheap pre-scan
//! refuses text nested deeper than [`MAX_SCHEMA_NESTING_DEPTH`] or longer than
//! [`MAX_SCHEMA_BYTES`], and the parsers then run on a thread of their own with a known stack,
//! [`PARSER_STACK_BYTES`], measured to hold the deepest accepted schema many times over.
//!
//! The pre-scans err on the side of counting too much: a bracket is skipped only inside a string
//! or comment that is closed the way the parser closes it, so no text the parser sees as nested
//! can look flat to the scan.

use std::fmt;

use crate::types::SchemaType;

/// Longest schema text accepted, references included one by one. A registered schema is stored
/// as one `_schemas` record, JSON-escaped inside its value, which must fit librdkafka's and the
/// broker's default 1 MB message size; half of that leaves room for the envelope and escaping.
pub const MAX_SCHEMA_BYTES: usize = 512 * 1024;

/// Deepest bracket nesting accepted in a schema: Protobuf `{ [ ( <`, JSON `{ [`. 100 is the
/// recursion limit of Protobuf's own decoders (protobuf-java, prost), so every accepted `.proto`
/// can also be decoded as a descriptor, and it is below `serde_json`'s limit of 128, so the
/// JSON-based types are refused here with a clear reason rather than deep inside the parser.
/// Generated schemas nest a few tens of levels at most (an Avro record costs three JSON levels).
pub const MAX_SCHEMA_NESTING_DEPTH: usize = 100;

/// Stack of the thread each parse runs on. Measured in a release build at
/// [`MAX_SCHEMA_NESTING_DEPTH`]: Protobuf needs 256–300 KiB (`protox-parse`, about 3 KiB per
/// message level, which is why 800 levels overflowed a 2 MiB runtime worker), JSON Schema
/// 256–300 KiB (`jsonschema`'s meta-schema check), Avro under 160 KiB. 16 MiB is 50 times that,
/// room for debug builds and dependencies' future releases; only touched pages take memory.
pub const PARSER_STACK_BYTES: usize = 16 * 1024 * 1024;

/// Why schema text was refused before parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitError {
    TooLarge { size_bytes: usize },
    TooDeep,
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitError::TooLarge { size_bytes } => write!(
                f,
                "the schema is {size_bytes} bytes long; at most {MAX_SCHEMA_BYTES} bytes are accepted"
            ),
            LimitError::TooDeep => write!(
                f,
                "the schema nests deeper than {MAX_SCHEMA_NESTING_DEPTH} levels of brackets"
            ),
        }
    }
}

/// Checks `text` of `schema_type` against [`MAX_SCHEMA_BYTES`] and [`MAX_SCHEMA_NESTING_DEPTH`].
pub fn check(schema_type: SchemaType, text: &str) -> Result<(), LimitError> {
    if text.len() > MAX_SCHEMA_BYTES {
        return Err(LimitError::TooLarge {
            size_bytes: text.len(),
        });
    }
    let within = match schema_type {
        SchemaType::Avro | SchemaType::Json => {
            json_within_depth(text.as_bytes(), MAX_SCHEMA_NESTING_DEPTH)
        }
        SchemaType::Protobuf => protobuf_within_depth(text, MAX_SCHEMA_NESTING_DEPTH),
    };
    if within {
        Ok(())
    } else {
        Err(LimitError::TooDeep)
    }
}

/// Whether JSON `text` nests `{`/`[` at most `max_depth` deep, strings skipped. Text that is not
/// JSON gets an answer too (the parser refuses it afterwards); an unterminated string hides
/// nothing, since `serde_json` stops at the first error and never recurses past it.
pub fn json_within_depth(text: &[u8], max_depth: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return false;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

/// Whether `.proto` `text` nests `{ [ ( <` at most `max_depth` deep. Skipped: `//` comments to
/// the end of the line, `/* */` comments that are closed, and `'`/`"` strings closed on their
/// line (a backslash escapes the next byte but not a newline), as `protox-parse` lexes them.
/// An unclosed string or comment is scanned as code: the parser reports it and may go on
/// parsing what follows. A base64 descriptor has no brackets; `prost` bounds its decoding.
pub fn protobuf_within_depth(text: &str, max_depth: usize) -> bool {
    let b = text.as_bytes();
    let mut depth = 0usize;
    // Set once a `/*` found no `*/` after it: no later `/*` can either (keeps the scan linear).
    let mut no_comment_end = false;
    let mut i = 0usize;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                i = b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |n| i + n + 1);
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') && !no_comment_end => {
                match find(&b[i + 2..], b"*/") {
                    Some(n) => {
                        i += 2 + n + 2;
                        continue;
                    }
                    None => no_comment_end = true,
                }
            }
            q @ (b'"' | b'\'') => {
                if let Some(end) = string_end(b, i + 1, q) {
                    i = end + 1;
                    continue;
                }
            }
            b'{' | b'[' | b'(' | b'<' => {
                depth += 1;
                if depth > max_depth {
                    return false;
                }
            }
            b'}' | b']' | b')' | b'>' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    true
}

/// Index of the quote `q` closing a string whose contents start at `from`, if it is closed on
/// the same line.
fn string_end(b: &[u8], from: usize, q: u8) -> Option<usize> {
    let mut j = from;
    while j < b.len() {
        match b[j] {
            b'\n' => return None,
            b'\\' if b.get(j + 1).is_some_and(|&c| c != b'\n') => j += 2,
            c if c == q => return Some(j),
            _ => j += 1,
        }
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Why [`on_parser_stack`] has no result.
#[derive(Debug)]
pub enum ParserThreadError {
    /// No thread could be started (out of memory or threads).
    Spawn(std::io::Error),
    /// The parser panicked: a parser bug the input triggers.
    Panicked,
}

impl fmt::Display for ParserThreadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParserThreadError::Spawn(e) => write!(f, "cannot start a schema parser thread: {e}"),
            ParserThreadError::Panicked => f.write_str("the schema parser failed on this input"),
        }
    }
}

/// Runs `f` on a new thread with a [`PARSER_STACK_BYTES`] stack and waits for it. `f` may
/// borrow from the caller. A panic in `f` comes back as an error, not as a panic here.
///
/// Callers block until `f` returns; they are request handlers (one parse at a time each) and the
/// store's writer, so at most one parser thread runs per caller thread.
pub fn on_parser_stack<T: Send>(f: impl FnOnce() -> T + Send) -> Result<T, ParserThreadError> {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("schema-parser".into())
            .stack_size(PARSER_STACK_BYTES)
            .spawn_scoped(scope, f)
            .map_err(ParserThreadError::Spawn)?;
        handle.join().map_err(|_| ParserThreadError::Panicked)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested_proto(depth: usize) -> String {
        let open: String = (0..depth).map(|i| format!("message M{i} {{ ")).collect();
        format!("syntax = \"proto3\";\n{open}{}\n", "}".repeat(depth))
    }

    fn nested_json_schema(depth: usize) -> String {
        // Each level is one object: {"type":"object","properties":{"a": ... }} is two.
        let mut s = String::from("{\"type\":\"string\"}");
        for _ in 0..depth / 2 {
            s = format!("{{\"type\":\"object\",\"properties\":{{\"a\":{s}}}}}");
        }
        s
    }

    fn nested_avro(records: usize) -> String {
        let mut s = String::from("\"string\"");
        for i in (0..records).rev() {
            s = format!(
                "{{\"type\":\"record\",\"name\":\"R{i}\",\"fields\":[{{\"name\":\"f\",\"type\":{s}}}]}}"
            );
        }
        s
    }

    #[test]
    fn deep_schemas_of_every_type_are_refused() {
        assert_eq!(
            check(SchemaType::Protobuf, &nested_proto(800)),
            Err(LimitError::TooDeep)
        );
        assert_eq!(
            check(
                SchemaType::Protobuf,
                &nested_proto(MAX_SCHEMA_NESTING_DEPTH + 1)
            ),
            Err(LimitError::TooDeep)
        );
        assert_eq!(
            check(SchemaType::Json, &"[".repeat(100_000)),
            Err(LimitError::TooDeep)
        );
        assert_eq!(
            check(SchemaType::Json, &nested_json_schema(400)),
            Err(LimitError::TooDeep)
        );
        assert_eq!(
            check(SchemaType::Avro, &nested_avro(200)),
            Err(LimitError::TooDeep)
        );
        // Option values and lists count as much as messages.
        let aggregate = format!(
            "syntax = \"proto3\"; option (o) = {}{};",
            "{ a: ".repeat(150),
            "}".repeat(150)
        );
        assert_eq!(
            check(SchemaType::Protobuf, &aggregate),
            Err(LimitError::TooDeep)
        );
    }

    #[test]
    fn large_schemas_are_refused() {
        let big = format!(
            "{{\"type\":\"record\",\"name\":\"B\",\"fields\":[],\"doc\":\"{}\"}}",
            "x".repeat(MAX_SCHEMA_BYTES)
        );
        assert!(matches!(
            check(SchemaType::Avro, &big),
            Err(LimitError::TooLarge { .. })
        ));
    }

    #[test]
    fn ordinary_schemas_with_brackets_in_strings_and_comments_pass() {
        let proto = r#"
            syntax = "proto3";
            // a line comment with {{{{ [[[[ ((((
            /* a block comment {{{{{{{{
               over lines <<<< */
            message M {
              string a = 1 [json_name = "{{{{\"{{"];
              map<string, int32> b = 2;
              string c = 3; // '{{{{'
              oneof o { int32 d = 4; }
              message N { enum E { X = 0; } }
            }
        "#;
        assert!(protobuf_within_depth(proto, 3));
        assert_eq!(check(SchemaType::Protobuf, proto), Ok(()));
        let braces: String = "{".repeat(200);
        let stringy = format!("syntax = \"proto3\"; message M {{ string a = 1 [json_name = '{braces}\\'{braces}']; }} // {braces}\n/* {braces} */");
        assert_eq!(check(SchemaType::Protobuf, &stringy), Ok(()));
        let json = format!(
            "{{\"type\":\"record\",\"name\":\"T\",\"doc\":\"{braces} \\\" [[[[\",\"fields\":[{{\"name\":\"a\",\"type\":\"string\"}}]}}"
        );
        assert!(json_within_depth(json.as_bytes(), 3));
        assert_eq!(check(SchemaType::Avro, &json), Ok(()));
        assert_eq!(check(SchemaType::Json, &nested_json_schema(60)), Ok(()));
        assert_eq!(check(SchemaType::Avro, &nested_avro(30)), Ok(()));
        assert_eq!(
            check(
                SchemaType::Protobuf,
                &nested_proto(MAX_SCHEMA_NESTING_DEPTH)
            ),
            Ok(())
        );
        // A base64 descriptor has no brackets at all.
        assert_eq!(check(SchemaType::Protobuf, "CgZhLnByb3Rv"), Ok(()));
    }

    #[test]
    fn unclosed_strings_and_comments_hide_nothing() {
        let deep = "{".repeat(MAX_SCHEMA_NESTING_DEPTH + 1);
        // protox-parse ends a string at the newline and parses on.
        assert!(!protobuf_within_depth(
            &format!("message M {{ string a = 1 [json_name = \"x\n{deep}"),
            MAX_SCHEMA_NESTING_DEPTH
        ));
        assert!(!protobuf_within_depth(
            &format!("message M {{ string a = 1 [json_name = 'x\\\n{deep}"),
            MAX_SCHEMA_NESTING_DEPTH
        ));
        assert!(!protobuf_within_depth(
            &format!("/* {deep}"),
            MAX_SCHEMA_NESTING_DEPTH
        ));
        // Many unclosed comments are scanned in linear time.
        let many = format!("{}{deep}", "/*".repeat(200_000));
        assert!(!protobuf_within_depth(&many, MAX_SCHEMA_NESTING_DEPTH));
    }

    #[test]
    fn the_parser_thread_returns_results_and_panics_as_errors() {
        let text = String::from("borrowed");
        assert_eq!(on_parser_stack(|| text.len()).ok(), Some(8));
        let panicked = on_parser_stack(|| -> usize { panic!("parser bug") });
        assert!(matches!(panicked, Err(ParserThreadError::Panicked)));
    }
}
