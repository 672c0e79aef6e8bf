//! The exec-form JSON reader.

use super::super::json::{parse_string_array, JsonArray};
use super::strings;

#[test]
fn string_arrays() {
    assert_eq!(parse_string_array("[]"), JsonArray::Strings(vec![]));
    assert_eq!(
        parse_string_array("  [ \"a\" ,\"b\" ]  "),
        JsonArray::Strings(strings(&["a", "b"]))
    );
    assert_eq!(
        parse_string_array("[\"\\u0041\\n\"]"),
        JsonArray::Strings(strings(&["A\n"]))
    );
    assert_eq!(
        parse_string_array("[\"\\udc00\"]"),
        JsonArray::Strings(strings(&["\u{fffd}"]))
    );
    assert_eq!(
        parse_string_array("[\"\\ud83d\\u0041\"]"),
        JsonArray::Strings(strings(&["\u{fffd}A"]))
    );
    assert_eq!(
        parse_string_array("[\"ünï\"]"),
        JsonArray::Strings(strings(&["ünï"]))
    );
}

#[test]
fn non_string_elements() {
    for text in [
        "[1]",
        "[\"a\", null]",
        "[[\"x\"]]",
        "[{}]",
        "[{\"k\": [1, 2.5, -0e+1]}]",
        "[true, false]",
    ] {
        assert_eq!(parse_string_array(text), JsonArray::NotStrings, "{text}");
    }
}

#[test]
fn invalid_json() {
    for text in [
        "",
        "[",
        "[\"a\",]",
        "['a']",
        "[\"a\"] x",
        "[01]",
        "[1.]",
        "[tru]",
        "[\"\\x\"]",
        "[\"\\u12\"]",
        "[\"tab\there\"]",
        "[{1: 2}]",
        "[\"a\" \"b\"]",
        "{\"a\": 1}",
        "[1, \"a\",]",
    ] {
        assert_eq!(parse_string_array(text), JsonArray::Invalid, "{text:?}");
    }
}

#[test]
fn deep_nesting_is_invalid_not_a_crash() {
    let text = format!("[{}{}]", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(parse_string_array(&text), JsonArray::Invalid);
}
