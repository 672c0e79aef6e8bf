//! Heredocs on RUN, COPY, ADD and ONBUILD.

use super::super::heredoc::{find_markers, parse_marker, Marker};
use super::super::{Command, Form, Heredoc};
use super::{body, err, ok, strings};

fn doc(name: &str, content: &str, expand: bool, chomp: bool, fd: Option<u32>) -> Heredoc {
    Heredoc {
        name: name.into(),
        content: content.into(),
        expand,
        chomp,
        file_descriptor: fd,
    }
}

#[test]
fn run_single_heredoc() {
    let b =
        body("FROM a\nRUN <<EOF\necho hello\n# not a comment here\n\necho $HOME\nEOF\nRUN after\n");
    assert_eq!(b.len(), 2);
    assert_eq!(b[0].command, Command::Run(Form::Shell("<<EOF".into())));
    assert_eq!(b[0].original, "RUN <<EOF");
    assert_eq!(
        b[0].heredocs,
        vec![doc(
            "EOF",
            "echo hello\n# not a comment here\n\necho $HOME\n",
            true,
            false,
            None
        )]
    );
    assert_eq!(b[1].line, 8);
    assert_eq!(b[1].command, Command::Run(Form::Shell("after".into())));
}

#[test]
fn run_with_program_and_quoted_delimiter() {
    let b = body("FROM a\nRUN python3 <<'PY'\nprint('$x')\nPY\n");
    assert_eq!(
        b[0].command,
        Command::Run(Form::Shell("python3 <<'PY'".into()))
    );
    assert_eq!(
        b[0].heredocs,
        vec![doc("PY", "print('$x')\n", false, false, None)]
    );
    let b = body("FROM a\nRUN cat <<\"EOT\"\n$y\nEOT\n");
    assert_eq!(b[0].heredocs, vec![doc("EOT", "$y\n", false, false, None)]);
}

#[test]
fn several_heredocs_with_fd_and_chomp() {
    let text = "FROM a\nRUN <<FILE1 cat > /f1 && 3<<-FILE2 cat >&3\nline1\nFILE1\n\t\tindented\n\tFILE2\nRUN x\n";
    let b = body(text);
    assert_eq!(
        b[0].heredocs,
        vec![
            doc("FILE1", "line1\n", true, false, None),
            doc("FILE2", "indented\n", true, true, Some(3))
        ]
    );
    assert_eq!(b[1].line, 7);
}

#[test]
fn copy_heredoc_sources() {
    let text = "FROM a\nCOPY --chmod=755 <<-\"RUN\" <<EOF2 /app/\n\t#!/bin/sh\n\techo ${x}\n\tRUN\nplain\nEOF2\n";
    let b = body(text);
    let i = &b[0];
    assert_eq!(
        i.command,
        Command::Copy {
            sources: strings(&["<<-\"RUN\"", "<<EOF2"]),
            dest: "/app/".into()
        }
    );
    assert_eq!(
        i.heredocs,
        vec![
            doc("RUN", "#!/bin/sh\necho ${x}\n", false, true, None),
            doc("EOF2", "plain\n", true, false, None)
        ]
    );
    assert_eq!(
        i.heredoc_for("<<-\"RUN\"").map(|h| h.name.as_str()),
        Some("RUN")
    );
    assert_eq!(
        i.heredoc_for("<<EOF2").map(|h| h.content.as_str()),
        Some("plain\n")
    );
    assert_eq!(i.heredoc_for("/etc/passwd"), None);
}

#[test]
fn add_heredoc() {
    let b = body("FROM a\nADD <<EOF /x\nhi\nEOF\n");
    assert_eq!(b[0].heredocs, vec![doc("EOF", "hi\n", true, false, None)]);
}

#[test]
fn heredoc_after_continuation() {
    let b = body("FROM a\nRUN --network=none \\\n  cat <<EOF > /out\nbody\nEOF\n");
    assert_eq!(
        b[0].command,
        Command::Run(Form::Shell("cat <<EOF > /out".into()))
    );
    assert_eq!(b[0].heredocs, vec![doc("EOF", "body\n", true, false, None)]);
}

#[test]
fn quoted_or_json_or_other_instructions_have_no_heredocs() {
    let b = body("FROM a\nRUN echo \"<<EOF\" '<<X'\nRUN [\"cat\", \"<<EOF\"]\nCMD cat <<EOF\nRUN cat <<<here\nRUN echo \\<<EOF\n");
    assert_eq!(b.len(), 5);
    assert!(b.iter().all(|i| i.heredocs.is_empty()));
}

#[test]
fn body_lines_keep_crlf_and_terminator_may_have_cr() {
    let b = body("FROM a\r\nRUN <<EOF\r\nx\r\nEOF\r\n");
    assert_eq!(b[0].heredocs, vec![doc("EOF", "x\r\n", true, false, None)]);
}

#[test]
fn last_body_line_without_newline() {
    let b = body("FROM a\nRUN <<EOF\nx\nEOF");
    assert_eq!(b[0].heredocs[0].content, "x\n");
}

#[test]
fn onbuild_heredoc_goes_to_trigger_too() {
    let c = ok("FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\n");
    let i = &c.stages[0].instructions[0];
    assert_eq!(i.heredocs, vec![doc("EOF", "echo hi\n", true, false, None)]);
    let Command::Onbuild(t) = &i.command else {
        panic!("not onbuild")
    };
    assert_eq!(t.heredocs, i.heredocs);
}

#[test]
fn unterminated_heredoc_errors() {
    let e = err("FROM a\nRUN <<EOF\necho hi\n");
    assert_eq!((e.line, e.instruction.as_str()), (2, "RUN"));
    assert_eq!(e.message, "unterminated heredoc EOF");
    assert_eq!(
        e.to_string(),
        "Containerfile:2: RUN: unterminated heredoc EOF"
    );
    // The second of two is missing its delimiter.
    let e = err("FROM a\nCOPY <<A <<B /\na\nA\nb\n");
    assert_eq!((e.line, e.message.as_str()), (2, "unterminated heredoc B"));
    // <<- only ignores tabs, not spaces, on the delimiter line.
    let e = err("FROM a\nRUN <<-EOF\n  EOF\n");
    assert_eq!(e.message, "unterminated heredoc EOF");
}

#[test]
fn marker_parsing() {
    let m = |name: &str, expand, chomp, fd| Marker {
        name: name.into(),
        expand,
        chomp,
        fd,
    };
    assert_eq!(parse_marker("<<EOF"), Some(m("EOF", true, false, None)));
    assert_eq!(parse_marker("<<-EOF"), Some(m("EOF", true, true, None)));
    assert_eq!(
        parse_marker("12<<'E F'"),
        Some(m("E F", false, false, Some(12)))
    );
    assert_eq!(
        parse_marker("<<E\"O\"F"),
        Some(m("EOF", false, false, None))
    );
    assert_eq!(parse_marker("<<$X"), Some(m("$X", true, false, None)));
    assert_eq!(parse_marker("<<"), None);
    assert_eq!(parse_marker("<<-"), None);
    assert_eq!(parse_marker("<<<x"), None);
    assert_eq!(parse_marker("a<<EOF"), None);
    assert_eq!(parse_marker("<<a b"), None);
    let names: Vec<String> = find_markers("RUN cat <<A && x 2<<-B \"<<C\" '<<D' <<'E'")
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, vec!["A", "B", "E"]);
    assert!(find_markers("RUN echo \"unbalanced <<EOF").is_empty());
}
