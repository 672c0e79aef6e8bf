//! Unit tests for the Containerfile parser and the shell-word lexer.
//!
//! `instructions` covers instructions and structure, `heredoc` heredocs, `errors`
//! every error with its line, `lex` the shell-word processor, `json` the
//! exec-form JSON reader and `lines` directives and continuations.

mod errors;
mod heredoc;
mod instructions;
mod json;
mod lex;
mod lines;

use super::{parse, Containerfile, Flag, Instruction, ParseError};

/// Parses or panics with the error.
fn ok(text: &str) -> Containerfile {
    match parse("Containerfile", text) {
        Ok(c) => c,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// Parses expecting an error.
fn err(text: &str) -> ParseError {
    match parse("Containerfile", text) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e,
    }
}

/// The instructions of the only (or first) stage.
fn body(text: &str) -> Vec<Instruction> {
    ok(text).stages.remove(0).instructions
}

/// The first instruction after `FROM scratch`.
fn first(instruction: &str) -> Instruction {
    body(&format!("FROM scratch\n{instruction}\n")).remove(0)
}

fn flag(name: &str, value: Option<&str>) -> Flag {
    Flag {
        name: name.to_string(),
        value: value.map(str::to_string),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}
