//! Every parse error, with its line and instruction.

use super::err;

/// Asserts the error's line, instruction and message.
fn check(text: &str, line: usize, instruction: &str, message: &str) {
    let e = err(text);
    assert_eq!(
        (e.line, e.instruction.as_str(), e.message.as_str()),
        (line, instruction, message),
        "for {text:?}"
    );
}

const NO_DEST: &str = "requires at least two arguments, but only one was provided. Destination could not be determined";

#[test]
fn display_format() {
    let e = err("FROM a\n\nFOO bar\n");
    assert_eq!(
        e.to_string(),
        "Containerfile:3: FOO: unknown instruction: FOO"
    );
    let e = err("");
    assert_eq!(e.to_string(), "Containerfile:1: file with no instructions");
    let boxed: Box<dyn std::error::Error> = Box::new(e);
    assert!(boxed.to_string().contains("no instructions"));
}

#[test]
fn file_level_errors() {
    check("", 1, "", "file with no instructions");
    check("# only\n\n# comments\n", 3, "", "file with no instructions");
    check(
        "ARG A=1\nARG B\n",
        2,
        "",
        "no FROM instruction: the file has no build stage",
    );
}

#[test]
fn unknown_instruction() {
    check("FROM a\nfoo bar\n", 2, "FOO", "unknown instruction: FOO");
    check(
        "FROM a\nRUN x \\\n  y\nCOPPY a b\n",
        4,
        "COPPY",
        "unknown instruction: COPPY",
    );
}

#[test]
fn instruction_before_from() {
    check(
        "ARG X\nRUN echo\nFROM a\n",
        2,
        "RUN",
        "no build stage in current context: only ARG may come before the first FROM",
    );
    check(
        "# c\nENV A=b\n",
        2,
        "ENV",
        "no build stage in current context: only ARG may come before the first FROM",
    );
}

#[test]
fn from_errors() {
    check(
        "FROM\n",
        1,
        "FROM",
        "FROM requires either one or three arguments",
    );
    check(
        "FROM a b\n",
        1,
        "FROM",
        "FROM requires either one or three arguments",
    );
    check(
        "FROM a TO b\n",
        1,
        "FROM",
        "FROM requires either one or three arguments",
    );
    check(
        "FROM a AS b c\n",
        1,
        "FROM",
        "FROM requires either one or three arguments",
    );
    check(
        "FROM a AS 1st\n",
        1,
        "FROM",
        "invalid name for build stage: \"1st\", name can't start with a number or contain symbols",
    );
    check(
        "FROM a\nFROM b AS my$stage\n",
        2,
        "FROM",
        "invalid name for build stage: \"my$stage\", name can't start with a number or contain symbols",
    );
    check(
        "FROM --platform a\n",
        1,
        "FROM",
        "missing a value on flag: --platform",
    );
}

#[test]
fn missing_arguments() {
    for kw in [
        "RUN",
        "CMD",
        "ENTRYPOINT",
        "SHELL",
        "EXPOSE",
        "VOLUME",
        "ENV",
        "LABEL",
        "ARG",
        "HEALTHCHECK",
        "ONBUILD",
    ] {
        check(
            &format!("FROM a\n{kw}\n"),
            2,
            kw,
            &format!("{kw} requires at least one argument"),
        );
    }
    for kw in ["USER", "WORKDIR", "STOPSIGNAL", "MAINTAINER"] {
        check(
            &format!("FROM a\n\n{} \n", kw.to_lowercase()),
            3,
            kw,
            &format!("{kw} requires exactly one argument"),
        );
    }
    check(
        "FROM a\nCOPY onlyone\n",
        2,
        "COPY",
        &format!("COPY {NO_DEST}"),
    );
    check(
        "FROM a\nADD --chown=1 x\n",
        2,
        "ADD",
        &format!("ADD {NO_DEST}"),
    );
    check(
        "FROM a\nCOPY [\"x\"]\n",
        2,
        "COPY",
        &format!("COPY {NO_DEST}"),
    );
    check("FROM a\nCOPY\n", 2, "COPY", &format!("COPY {NO_DEST}"));
    check(
        "FROM a\nSHELL []\n",
        2,
        "SHELL",
        "SHELL requires at least one argument",
    );
    check(
        "FROM a\nVOLUME []\n",
        2,
        "VOLUME",
        "VOLUME requires at least one argument",
    );
}

#[test]
fn flag_errors() {
    check(
        "FROM a\nRUN --foo=bar echo\n",
        2,
        "RUN",
        "unknown flag: --foo",
    );
    check("FROM a\nENV --x=1 A=b\n", 2, "ENV", "unknown flag: --x");
    check(
        "FROM a\nADD --from=b x y\n",
        2,
        "ADD",
        "unknown flag: --from",
    );
    check(
        "FROM a\nCOPY --from x y\n",
        2,
        "COPY",
        "missing a value on flag: --from",
    );
    check(
        "FROM a\nCOPY --link= x y\n",
        2,
        "COPY",
        "missing a value on flag: --link",
    );
    check(
        "FROM a\nCOPY --link=yes x y\n",
        2,
        "COPY",
        "expecting boolean value for flag --link, not: yes",
    );
    check(
        "FROM a\nCOPY --from=a --from=b x y\n",
        2,
        "COPY",
        "duplicate flag specified: --from",
    );
    check(
        "FROM a\nRUN --network=none --network=host x\n",
        2,
        "RUN",
        "duplicate flag specified: --network",
    );
    check(
        "FROM a\nHEALTHCHECK --bogus=1 CMD x\n",
        2,
        "HEALTHCHECK",
        "unknown flag: --bogus",
    );
}

#[test]
fn json_and_shell_errors() {
    let not_strings = "when using JSON array syntax, arrays must be comprised of strings only";
    check("FROM a\nCMD [\"a\", 1]\n", 2, "CMD", not_strings);
    check(
        "FROM a\nRUN [\"a\", {\"b\": [true, null, -1.5e3]}]\n",
        2,
        "RUN",
        not_strings,
    );
    check("FROM a\nCOPY [\"a\", false]\n", 2, "COPY", not_strings);
    check(
        "FROM a\nSHELL /bin/bash -c\n",
        2,
        "SHELL",
        "SHELL requires the arguments to be in JSON form",
    );
    check(
        "FROM a\nSHELL [\"a\", 'b']\n",
        2,
        "SHELL",
        "SHELL requires the arguments to be in JSON form",
    );
}

#[test]
fn env_label_arg_errors() {
    check(
        "FROM a\nENV onlykey\n",
        2,
        "ENV",
        "ENV must have two arguments",
    );
    check(
        "FROM a\nLABEL onlykey\n",
        2,
        "LABEL",
        "LABEL must have two arguments",
    );
    check(
        "FROM a\nENV a=1 b\n",
        2,
        "ENV",
        "Syntax error - can't find = in \"b\". Must be of the form: name=value",
    );
    check("FROM a\nENV =x\n", 2, "ENV", "ENV names can not be blank");
    check(
        "FROM a\nLABEL a=1 =2\n",
        2,
        "LABEL",
        "LABEL names can not be blank",
    );
    check("ARG =x\nFROM a\n", 1, "ARG", "ARG names can not be blank");
}

#[test]
fn volume_healthcheck_copy_errors() {
    check(
        "FROM a\nVOLUME [\"/a\", \" \"]\n",
        2,
        "VOLUME",
        "VOLUME specified can not be an empty string",
    );
    check(
        "FROM a\nHEALTHCHECK NONE x\n",
        2,
        "HEALTHCHECK",
        "HEALTHCHECK NONE takes no arguments",
    );
    check(
        "FROM a\nHEALTHCHECK CMD\n",
        2,
        "HEALTHCHECK",
        "Missing command after HEALTHCHECK CMD",
    );
    check(
        "FROM a\nHEALTHCHECK CMD []\n",
        2,
        "HEALTHCHECK",
        "Missing command after HEALTHCHECK CMD",
    );
    check(
        "FROM a\nHEALTHCHECK --interval=5s\n",
        2,
        "HEALTHCHECK",
        "HEALTHCHECK requires at least one argument",
    );
    check(
        "FROM a\nHEALTHCHECK RUN x\n",
        2,
        "HEALTHCHECK",
        "Unknown type \"RUN\" in HEALTHCHECK (try CMD)",
    );
    check(
        "FROM a\nCOPY x <<EOF\nhi\nEOF\n",
        2,
        "COPY",
        "COPY cannot accept a heredoc as a destination",
    );
}

#[test]
fn onbuild_errors() {
    check(
        "FROM a\nONBUILD ONBUILD RUN x\n",
        2,
        "ONBUILD",
        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
    );
    check(
        "FROM a\nONBUILD from b\n",
        2,
        "ONBUILD",
        "FROM isn't allowed as an ONBUILD trigger",
    );
    check(
        "FROM a\nONBUILD MAINTAINER me\n",
        2,
        "ONBUILD",
        "MAINTAINER isn't allowed as an ONBUILD trigger",
    );
    check(
        "FROM a\nONBUILD COPY x\n",
        2,
        "ONBUILD",
        &format!("COPY {NO_DEST}"),
    );
    check(
        "FROM a\nONBUILD BOGUS x\n",
        2,
        "ONBUILD",
        "unknown instruction: BOGUS",
    );
    check(
        "FROM a\nONBUILD --x RUN y\n",
        2,
        "ONBUILD",
        "unknown flag: --x",
    );
}

#[test]
fn error_line_is_the_instruction_start() {
    check(
        "FROM a\n\n# c\nRUN a \\\n  b \\\n  --c\nENV\n",
        7,
        "ENV",
        "ENV requires at least one argument",
    );
    check(
        "FROM a\nCOPY \\\n  \\\n  onlyone\n",
        2,
        "COPY",
        &format!("COPY {NO_DEST}"),
    );
    check(
        "FROM a\nRUN <<EOF\nx\nEOF\nRUN <<A\n",
        5,
        "RUN",
        "unterminated heredoc A",
    );
}
