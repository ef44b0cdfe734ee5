//! The bounds of manifest and bind set YAML, checked before serde_norway loads a document:
//! how deep mappings and sequences nest, and how many values a document holds.
//!
//! serde_norway loads every event of a document before it deserializes, and its own recursion
//! limit (128) applies only to the second step. Loading is where the time goes: libyaml's scanner
//! walks its stack of possible simple keys, one per flow level, for every token, so 100,000
//! nested `[` in 200 KB took over a minute before any limit applied (quadratic in the depth).
//! This walks the events of the same parser, libyaml through `unsafe-libyaml-norway` (the crate
//! serde_norway wraps), and stops at the first collection past the limit, so the work done is
//! bounded by the limit. A textual pre-scan would disagree with the parser about quotes,
//! comments and plain scalars, and every disagreement would be a way past the limit.
//!
//! The value count bounds what validation does after the parse: several rules compare every
//! bind, deny entry, secret or problem with every other, which is instant for a real manifest
//! and was minutes for a 4 MiB one of 60,000 sandboxes.
//!
//! Syntax errors are not reported here: the walk stops, and serde_norway reports them with its
//! own messages and locations.

use std::mem::MaybeUninit;

use unsafe_libyaml_norway as unsafe_yaml;

/// The deepest nesting of mappings and sequences accepted. A Fortress manifest needs about six
/// levels (`sandboxes[0].binds[0]` in flow style inside a block); this leaves room for any hand
/// style and stays far from serde_norway's recursion limit.
pub const MAX_DEPTH: usize = 64;

/// The most values (mappings, sequences, scalars and aliases) in one document. The shipped
/// OpenClaw manifest holds 185 and its bind set 69.
pub const MAX_VALUES: usize = 10_000;

/// Which bound a document crossed, and the 1-based line and column where it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutOfBounds {
    TooDeep { line: usize, column: usize },
    TooMany { line: usize, column: usize },
}

impl OutOfBounds {
    pub fn location(self) -> (usize, usize) {
        match self {
            OutOfBounds::TooDeep { line, column } | OutOfBounds::TooMany { line, column } => {
                (line, column)
            }
        }
    }
}

/// Checks that no mapping or sequence in `text` is nested deeper than `max_depth` and that no
/// document holds more than `max_values` values.
pub fn check(text: &str, max_depth: usize, max_values: usize) -> Result<(), OutOfBounds> {
    let mut parser = MaybeUninit::<unsafe_yaml::yaml_parser_t>::uninit();
    let parser = parser.as_mut_ptr();
    // SAFETY: `parser` points to storage that outlives every use below and does not move (the
    // parser keeps a pointer to itself once given its input); `yaml_parser_initialize` fully
    // initialises it, and it is deleted exactly once, after the last event. The input is
    // borrowed from `text`, which outlives the parser. Each event is read only after
    // `yaml_parser_parse` succeeded (which initialises it) and deleted exactly once.
    unsafe {
        if unsafe_yaml::yaml_parser_initialize(parser).fail {
            // Out of memory in libyaml: leave the document to serde_norway, which reports it.
            return Ok(());
        }
        unsafe_yaml::yaml_parser_set_encoding(parser, unsafe_yaml::YAML_UTF8_ENCODING);
        unsafe_yaml::yaml_parser_set_input_string(parser, text.as_ptr(), text.len() as u64);
        let (mut depth, mut values) = (0usize, 0usize);
        let result = loop {
            let mut event = MaybeUninit::<unsafe_yaml::yaml_event_t>::uninit();
            if unsafe_yaml::yaml_parser_parse(parser, event.as_mut_ptr()).fail {
                break Ok(());
            }
            let event = event.as_mut_ptr();
            let kind = (*event).type_;
            let mark = (*event).start_mark;
            unsafe_yaml::yaml_event_delete(event);
            let (line, column) = (mark.line as usize + 1, mark.column as usize + 1);
            match kind {
                unsafe_yaml::YAML_SEQUENCE_START_EVENT | unsafe_yaml::YAML_MAPPING_START_EVENT => {
                    depth += 1;
                    values += 1;
                    if depth > max_depth {
                        break Err(OutOfBounds::TooDeep { line, column });
                    }
                }
                unsafe_yaml::YAML_SCALAR_EVENT | unsafe_yaml::YAML_ALIAS_EVENT => values += 1,
                unsafe_yaml::YAML_SEQUENCE_END_EVENT | unsafe_yaml::YAML_MAPPING_END_EVENT => {
                    depth = depth.saturating_sub(1);
                }
                unsafe_yaml::YAML_DOCUMENT_START_EVENT => values = 0,
                unsafe_yaml::YAML_STREAM_END_EVENT => break Ok(()),
                _ => {}
            }
            if values > max_values {
                break Err(OutOfBounds::TooMany { line, column });
            }
        };
        unsafe_yaml::yaml_parser_delete(parser);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(depth: usize) -> String {
        format!("a: {}{}\n", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn nesting_up_to_the_limit_passes_and_one_more_level_is_refused_where_it_starts() {
        // The top-level mapping is one level, so `depth` brackets make `depth + 1` levels.
        assert_eq!(check(&flow(9), 10, MAX_VALUES), Ok(()));
        assert_eq!(
            check(&flow(10), 10, MAX_VALUES),
            Err(OutOfBounds::TooDeep {
                line: 1,
                column: 13
            })
        );
    }

    #[test]
    fn block_nesting_counts_like_flow_nesting() {
        let mut text = String::new();
        for i in 0..20 {
            text.push_str(&format!("{}k{i}:\n", "  ".repeat(i)));
        }
        text.push_str(&format!("{}v: 1\n", "  ".repeat(20)));
        assert_eq!(check(&text, 21, MAX_VALUES), Ok(()));
        assert!(check(&text, 20, MAX_VALUES).is_err());
    }

    #[test]
    fn brackets_inside_quotes_comments_and_plain_scalars_are_not_nesting() {
        let text = "a: \"[[[[[[\"\nb: '{{{{{{'\nc: x[[[[[[ # [[[[[[\nd: |\n  [[[[[[\n";
        assert_eq!(check(text, 1, MAX_VALUES), Ok(()));
    }

    #[test]
    fn a_hundred_thousand_levels_are_refused_at_the_first_level_past_the_limit() {
        let at = check(&flow(100_000), MAX_DEPTH, MAX_VALUES).unwrap_err();
        assert_eq!(
            at,
            OutOfBounds::TooDeep {
                line: 1,
                column: 4 + MAX_DEPTH - 1
            }
        );
    }

    #[test]
    fn a_syntax_error_is_left_to_the_deserializer() {
        assert_eq!(check("a: [\n", MAX_DEPTH, MAX_VALUES), Ok(()));
        assert_eq!(check("", MAX_DEPTH, MAX_VALUES), Ok(()));
    }

    #[test]
    fn values_are_counted_per_document_up_to_the_limit() {
        let list = |n: usize| format!("a: [{}]\n", vec!["x"; n].join(", "));
        // The mapping, its key and the sequence are three values.
        assert_eq!(check(&list(7), 8, 10), Ok(()));
        assert_eq!(
            check(&list(8), 8, 10),
            Err(OutOfBounds::TooMany {
                line: 1,
                column: 26
            })
        );
        let two = format!("{}---\n{}", list(7), list(7));
        assert_eq!(check(&two, 8, 10), Ok(()));
    }
}
