//! Directives, comments, blank lines and continuations.

use super::super::{Command, Form};
use super::{body, err, ok, strings};

#[test]
fn comments_and_blank_lines_are_skipped() {
    let b = body("# a comment\n\nFROM a\n   # indented comment\n\n\tRUN echo hi # not a comment\n");
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].line, 6);
    assert_eq!(
        b[0].command,
        Command::Run(Form::Shell("echo hi # not a comment".into()))
    );
}

#[test]
fn continuation_drops_comment_and_empty_lines() {
    let text = "FROM a\nRUN echo one \\\n# comment inside\n\n   # indented comment\n    two \\\n\n    three\nRUN next\n";
    let b = body(text);
    assert_eq!(b.len(), 2);
    assert_eq!(b[0].line, 2);
    assert_eq!(
        b[0].command,
        Command::Run(Form::Shell("echo one     two     three".into()))
    );
    assert_eq!(b[1].line, 9);
}

#[test]
fn continuation_allows_trailing_blanks_and_joins_without_space() {
    let b = body("FROM a\nRUN echo a\\  \t\nb\n");
    assert_eq!(b[0].command, Command::Run(Form::Shell("echo ab".into())));
}

#[test]
fn escaped_escape_at_end_is_not_a_continuation() {
    let b = body("FROM a\nRUN echo a\\\\\nRUN echo b\n");
    assert_eq!(b.len(), 2);
    assert_eq!(b[0].command, Command::Run(Form::Shell("echo a\\\\".into())));
}

#[test]
fn continuation_at_end_of_file() {
    let b = body("FROM a\nRUN echo a \\\n");
    assert_eq!(b[0].command, Command::Run(Form::Shell("echo a".into())));
}

#[test]
fn keyword_alone_then_continued() {
    let b = body("FROM a\nCOPY \\\n  src \\\n  /dst\n");
    assert_eq!(
        b[0].command,
        Command::Copy {
            sources: strings(&["src"]),
            dest: "/dst".into()
        }
    );
}

#[test]
fn crlf_and_bom_are_handled() {
    let c = ok("\u{feff}# escape=`\r\nFROM a\r\nRUN echo a `\r\n  b\r\n");
    assert_eq!(c.escape, '`');
    assert_eq!(
        c.stages[0].instructions[0].command,
        Command::Run(Form::Shell("echo a   b".into()))
    );
}

#[test]
fn directives_are_case_insensitive_and_others_ignored() {
    let c = ok("# syntax=docker/dockerfile:1\n#ESCAPE = `\n# check=skip=all\nFROM a\n");
    assert_eq!(c.escape, '`');
    let c = ok("#   Escape=\\\nFROM a\n");
    assert_eq!(c.escape, '\\');
}

#[test]
fn directives_only_at_the_top() {
    // After an instruction, a comment, or a blank line they are plain comments.
    assert_eq!(ok("FROM a\n# escape=`\n").escape, '\\');
    assert_eq!(ok("# hello\n# escape=`\nFROM a\n").escape, '\\');
    assert_eq!(ok("\n# escape=`\nFROM a\n").escape, '\\');
    // An unknown directive ends the directive block too.
    assert_eq!(ok("# foo=bar\n# escape=`\nFROM a\n").escape, '\\');
    // Repeating one after the block ended is just a comment.
    assert_eq!(ok("# escape=`\nFROM a\n# escape=\\\n").escape, '`');
}

#[test]
fn backslash_is_literal_with_backtick_escape() {
    let c = ok("# escape=`\nFROM a\nRUN echo \\\nRUN b\n");
    let b = &c.stages[0].instructions;
    assert_eq!(b.len(), 2);
    assert_eq!(b[0].command, Command::Run(Form::Shell("echo \\".into())));
}

#[test]
fn directive_errors() {
    let e = err("# escape=x\nFROM a\n");
    assert_eq!((e.line, e.instruction.as_str()), (1, ""));
    assert_eq!(e.message, "invalid escape token 'x' does not match ` or \\");
    let e = err("# escape=`\n# escape=`\nFROM a\n");
    assert_eq!(e.line, 2);
    assert_eq!(e.message, "only one escape parser directive can be used");
    assert_eq!(
        e.to_string(),
        "Containerfile:2: only one escape parser directive can be used"
    );
}
