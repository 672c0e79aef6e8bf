//! Instructions, forms, flags and stage structure.

use super::super::{Command, Form, Healthcheck};
use super::{body, first, flag, ok, strings};

#[test]
fn from_plain_platform_and_alias() {
    let c = ok("FROM --platform=$BUILDPLATFORM golang:1.22 AS Build\nFROM alpine\n");
    assert_eq!(c.stages.len(), 2);
    let s = &c.stages[0];
    assert_eq!(s.index, 0);
    assert_eq!(s.name.as_deref(), Some("build"));
    assert_eq!(s.from.keyword, "FROM");
    assert_eq!(s.from.line, 1);
    assert_eq!(s.from.flags, vec![flag("platform", Some("$BUILDPLATFORM"))]);
    assert_eq!(
        s.from.command,
        Command::From {
            image: "golang:1.22".into(),
            alias: Some("build".into())
        }
    );
    assert_eq!(
        s.from.original,
        "FROM --platform=$BUILDPLATFORM golang:1.22 AS Build"
    );
    assert_eq!(c.stages[1].index, 1);
    assert_eq!(c.stages[1].name, None);
    assert_eq!(c.stages[1].from.line, 2);
}

#[test]
fn as_keyword_and_instructions_are_case_insensitive() {
    let c = ok("from alpine as First\nrun echo hi\nFrOm first aS second\nCopy --from=first a b\n");
    assert_eq!(c.stages[0].name.as_deref(), Some("first"));
    assert_eq!(c.stages[1].name.as_deref(), Some("second"));
    assert_eq!(c.stages[0].instructions[0].keyword, "RUN");
    assert_eq!(c.stages[0].instructions[0].original, "run echo hi");
    // Flag names are case-sensitive, as in BuildKit.
    let e = super::err("FROM a\nCOPY --FROM=first a b\n");
    assert_eq!(e.message, "unknown flag: --FROM");
}

#[test]
fn stage_names_allow_digits_dashes_dots_underscores() {
    let c = ok("FROM a AS my-stage_1.x\n");
    assert_eq!(c.stages[0].name.as_deref(), Some("my-stage_1.x"));
}

#[test]
fn global_args_before_first_from() {
    let c =
        ok("ARG VERSION=3.19\nARG BASE\nFROM alpine:${VERSION}\nARG VERSION\nRUN echo $VERSION\n");
    assert_eq!(c.global_args.len(), 2);
    assert_eq!(
        c.global_args[0].command,
        Command::Arg(vec![("VERSION".into(), Some("3.19".into()))])
    );
    assert_eq!(
        c.global_args[1].command,
        Command::Arg(vec![("BASE".into(), None)])
    );
    assert_eq!(c.global_args[1].line, 2);
    assert_eq!(
        c.stages[0].from.command,
        Command::From {
            image: "alpine:${VERSION}".into(),
            alias: None
        }
    );
    assert_eq!(c.stages[0].instructions.len(), 2);
    assert_eq!(
        c.stages[0].instructions[0].command,
        Command::Arg(vec![("VERSION".into(), None)])
    );
}

#[test]
fn arg_several_per_line_raw_values() {
    let i = first(r#"ARG a=1 b c="x y" d= e=$HOME"#);
    assert_eq!(
        i.command,
        Command::Arg(vec![
            ("a".into(), Some("1".into())),
            ("b".into(), None),
            ("c".into(), Some("\"x y\"".into())),
            ("d".into(), Some(String::new())),
            ("e".into(), Some("$HOME".into())),
        ])
    );
}

#[test]
fn run_shell_and_exec_forms_with_flags() {
    let i =
        first("RUN --mount=type=cache,target=/root/.cache --network=none   echo a &&   echo b  ");
    assert_eq!(i.keyword, "RUN");
    assert_eq!(
        i.flags,
        vec![
            flag("mount", Some("type=cache,target=/root/.cache")),
            flag("network", Some("none"))
        ]
    );
    assert_eq!(
        i.command,
        Command::Run(Form::Shell("echo a &&   echo b".into()))
    );
    assert_eq!(
        i.original,
        "RUN --mount=type=cache,target=/root/.cache --network=none   echo a &&   echo b"
    );
    let i = first(r#"RUN ["/bin/sh", "-c", "echo \"hi\""]"#);
    assert_eq!(
        i.command,
        Command::Run(Form::Exec(strings(&["/bin/sh", "-c", "echo \"hi\""])))
    );
    assert!(i.flags.is_empty());
}

#[test]
fn run_mount_is_repeatable_and_flag_quotes_are_removed() {
    let i = first(r#"RUN --mount=type=secret,id="tok" --mount=type=ssh --security=insecure true"#);
    assert_eq!(
        i.flags,
        vec![
            flag("mount", Some("type=secret,id=tok")),
            flag("mount", Some("type=ssh")),
            flag("security", Some("insecure"))
        ]
    );
    assert_eq!(i.flag("mount"), Some(Some("type=ssh")));
    assert_eq!(i.flag("network"), None);
    assert_eq!(i.command, Command::Run(Form::Shell("true".into())));
}

#[test]
fn double_dash_ends_flags() {
    let i = first("RUN -- --not-a-flag");
    assert!(i.flags.is_empty());
    assert_eq!(i.command, Command::Run(Form::Shell("--not-a-flag".into())));
    let i = first("RUN -x --y");
    assert_eq!(i.command, Command::Run(Form::Shell("-x --y".into())));
}

#[test]
fn invalid_json_falls_back_to_shell_form() {
    let i = first("CMD [\"a\", 'b']");
    assert_eq!(i.command, Command::Cmd(Form::Shell("[\"a\", 'b']".into())));
    let i = first("ENTRYPOINT [\"unterminated\"");
    assert_eq!(
        i.command,
        Command::Entrypoint(Form::Shell("[\"unterminated\"".into()))
    );
    let i = first("RUN [ -f /x ] && echo yes");
    assert_eq!(
        i.command,
        Command::Run(Form::Shell("[ -f /x ] && echo yes".into()))
    );
    let i = first("CMD [\"a\"] trailing");
    assert_eq!(
        i.command,
        Command::Cmd(Form::Shell("[\"a\"] trailing".into()))
    );
}

#[test]
fn cmd_entrypoint_exec_shell_and_empty_array() {
    assert_eq!(
        first("CMD [\"nginx\", \"-g\", \"daemon off;\"]").command,
        Command::Cmd(Form::Exec(strings(&["nginx", "-g", "daemon off;"])))
    );
    assert_eq!(
        first("CMD echo $HOME").command,
        Command::Cmd(Form::Shell("echo $HOME".into()))
    );
    assert_eq!(
        first("ENTRYPOINT []").command,
        Command::Entrypoint(Form::Exec(vec![]))
    );
    assert_eq!(
        first("ENTRYPOINT exec top -b").command,
        Command::Entrypoint(Form::Shell("exec top -b".into()))
    );
}

#[test]
fn json_escapes_are_decoded() {
    let i = first(
        r#"CMD ["a\"b", "c\\d", "e\/f", "\b\f\n\r\t", "\u00e9\u4e2d", "\ud83d\ude00", "\ud800x"]"#,
    );
    assert_eq!(
        i.command,
        Command::Cmd(Form::Exec(strings(&[
            "a\"b",
            "c\\d",
            "e/f",
            "\u{8}\u{c}\n\r\t",
            "é中",
            "😀",
            "\u{fffd}x"
        ])))
    );
}

#[test]
fn shell_instruction_json() {
    let i = first(r#"SHELL ["powershell", "-command"]"#);
    assert_eq!(
        i.command,
        Command::Shell(strings(&["powershell", "-command"]))
    );
}

#[test]
fn copy_and_add_words_json_and_flags() {
    let i = first("COPY --from=build --chown=1000:1000 --chmod=755 --link /src/a /src/b   /dst/");
    assert_eq!(
        i.flags,
        vec![
            flag("from", Some("build")),
            flag("chown", Some("1000:1000")),
            flag("chmod", Some("755")),
            flag("link", None)
        ]
    );
    assert_eq!(
        i.command,
        Command::Copy {
            sources: strings(&["/src/a", "/src/b"]),
            dest: "/dst/".into()
        }
    );
    let i = first(r#"COPY ["my file.txt", "other", "/dest dir/"]"#);
    assert_eq!(
        i.command,
        Command::Copy {
            sources: strings(&["my file.txt", "other"]),
            dest: "/dest dir/".into()
        }
    );
    // Shell-form words are split on whitespace only: quotes stay raw.
    let i = first(r#"COPY "a b" c"#);
    assert_eq!(
        i.command,
        Command::Copy {
            sources: strings(&["\"a", "b\""]),
            dest: "c".into()
        }
    );
    let i = first("COPY --parents --exclude=*.md --exclude=*.txt --link=false ./x /y");
    assert_eq!(i.flags.len(), 4);
    assert_eq!(i.flags[3], flag("link", Some("false")));
    let i =
        first("ADD --checksum=sha256:abc --keep-git-dir=true --unpack https://x/y.tar.gz /opt/");
    assert_eq!(
        i.command,
        Command::Add {
            sources: strings(&["https://x/y.tar.gz"]),
            dest: "/opt/".into()
        }
    );
    assert_eq!(i.flags[0], flag("checksum", Some("sha256:abc")));
    assert_eq!(i.flags[1], flag("keep-git-dir", Some("true")));
    assert_eq!(i.flags[2], flag("unpack", None));
}

#[test]
fn env_pairs_keep_quotes_and_escapes_raw() {
    let i = first(r#"ENV A=1 B="two words" C='single $x' D=a\ b E= F="esc \" q""#);
    assert_eq!(
        i.command,
        Command::Env(vec![
            ("A".into(), "1".into()),
            ("B".into(), "\"two words\"".into()),
            ("C".into(), "'single $x'".into()),
            ("D".into(), "a\\ b".into()),
            ("E".into(), String::new()),
            ("F".into(), "\"esc \\\" q\"".into()),
        ])
    );
}

#[test]
fn env_value_may_contain_equals_and_keyword_is_uppercased() {
    let i = first("env A=b=c URL=http://x/?q=1");
    assert_eq!(i.keyword, "ENV");
    assert_eq!(
        i.command,
        Command::Env(vec![
            ("A".into(), "b=c".into()),
            ("URL".into(), "http://x/?q=1".into())
        ])
    );
}

#[test]
fn env_and_label_legacy_form() {
    let i = first("ENV PATH /usr/local/bin:$PATH   and more");
    assert_eq!(
        i.command,
        Command::Env(vec![(
            "PATH".into(),
            "/usr/local/bin:$PATH   and more".into()
        )])
    );
    let i = first("LABEL maintainer someone@example.com");
    assert_eq!(
        i.command,
        Command::Label(vec![("maintainer".into(), "someone@example.com".into())])
    );
}

#[test]
fn label_pairs() {
    let i = first(r#"LABEL "com.example.vendor"="ACME" version=1.0 description="multi word""#);
    assert_eq!(
        i.command,
        Command::Label(vec![
            ("\"com.example.vendor\"".into(), "\"ACME\"".into()),
            ("version".into(), "1.0".into()),
            ("description".into(), "\"multi word\"".into()),
        ])
    );
}

#[test]
fn expose_volume_user_workdir_stopsignal_maintainer() {
    assert_eq!(
        first("EXPOSE 80/tcp 443  53/udp").command,
        Command::Expose(strings(&["80/tcp", "443", "53/udp"]))
    );
    assert_eq!(
        first("VOLUME /data /logs").command,
        Command::Volume(strings(&["/data", "/logs"]))
    );
    assert_eq!(
        first(r#"VOLUME ["/var/lib/x", " /y "]"#).command,
        Command::Volume(strings(&["/var/lib/x", "/y"]))
    );
    assert_eq!(
        first("USER app:app").command,
        Command::User("app:app".into())
    );
    assert_eq!(
        first("USER  some user  ").command,
        Command::User("some user".into())
    );
    assert_eq!(
        first("WORKDIR /app/$DIR").command,
        Command::Workdir("/app/$DIR".into())
    );
    assert_eq!(
        first("STOPSIGNAL SIGKILL").command,
        Command::StopSignal("SIGKILL".into())
    );
    assert_eq!(
        first("MAINTAINER Jane <jane@x.org>").command,
        Command::Maintainer("Jane <jane@x.org>".into())
    );
}

#[test]
fn healthcheck_forms() {
    assert_eq!(
        first("HEALTHCHECK NONE").command,
        Command::Healthcheck(Healthcheck::None)
    );
    assert_eq!(
        first("healthcheck none").command,
        Command::Healthcheck(Healthcheck::None)
    );
    let i = first("HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --start-interval=1s --retries=3 CMD curl -f http://localhost/ || exit 1");
    assert_eq!(
        i.command,
        Command::Healthcheck(Healthcheck::Check {
            test: Form::Shell("curl -f http://localhost/ || exit 1".into())
        })
    );
    assert_eq!(i.flags.len(), 5);
    assert_eq!(i.flags[4], flag("retries", Some("3")));
    let i = first(r#"HEALTHCHECK cmd ["/bin/check", "--fast"]"#);
    assert_eq!(
        i.command,
        Command::Healthcheck(Healthcheck::Check {
            test: Form::Exec(strings(&["/bin/check", "--fast"]))
        })
    );
}

#[test]
fn onbuild_trigger_is_parsed() {
    let i = first("ONBUILD RUN --mount=type=cache,target=/c make  all");
    assert_eq!(i.keyword, "ONBUILD");
    assert!(i.flags.is_empty());
    let Command::Onbuild(trigger) = &i.command else {
        panic!("not onbuild: {i:?}")
    };
    assert_eq!(trigger.keyword, "RUN");
    assert_eq!(trigger.line, 2);
    assert_eq!(
        trigger.flags,
        vec![flag("mount", Some("type=cache,target=/c"))]
    );
    assert_eq!(
        trigger.command,
        Command::Run(Form::Shell("make  all".into()))
    );
    assert_eq!(
        trigger.original,
        "RUN --mount=type=cache,target=/c make  all"
    );
    assert_eq!(
        i.original,
        "ONBUILD RUN --mount=type=cache,target=/c make  all"
    );
    let i = first("onbuild copy . /app");
    let Command::Onbuild(trigger) = &i.command else {
        panic!("not onbuild")
    };
    assert_eq!(
        trigger.command,
        Command::Copy {
            sources: strings(&["."]),
            dest: "/app".into()
        }
    );
}

#[test]
fn instructions_go_to_their_stage() {
    let c = ok("FROM a AS one\nRUN x\nENV K=v\nFROM b\nCOPY --from=one /x /y\n");
    assert_eq!(c.stages[0].instructions.len(), 2);
    assert_eq!(c.stages[0].instructions[1].line, 3);
    assert_eq!(c.stages[1].instructions.len(), 1);
    assert_eq!(c.stages[1].instructions[0].line, 5);
    assert_eq!(c.escape, '\\');
}

#[test]
fn windows_style_file_with_backtick_escape() {
    let text = "# escape=`\n\nFROM mcr.microsoft.com/windows/servercore:ltsc2022\nCOPY testfile.txt c:\\\nRUN dir c:\\ `\n    && echo done\nENV P=C:\\a`\\b Q=`$x\n";
    let c = ok(text);
    assert_eq!(c.escape, '`');
    let b = &c.stages[0].instructions;
    assert_eq!(
        b[0].command,
        Command::Copy {
            sources: strings(&["testfile.txt"]),
            dest: "c:\\".into()
        }
    );
    assert_eq!(
        b[1].command,
        Command::Run(Form::Shell("dir c:\\     && echo done".into()))
    );
    assert_eq!(b[1].line, 5);
    assert_eq!(b[2].line, 7);
    assert_eq!(
        b[2].command,
        Command::Env(vec![
            ("P".into(), "C:\\a`\\b".into()),
            ("Q".into(), "`$x".into())
        ])
    );
}

#[test]
fn original_joins_continuations_like_docker() {
    let b = body("FROM a\nRUN apt-get update \\\n    && apt-get install -y \\\n  curl\n");
    assert_eq!(
        b[0].original,
        "RUN apt-get update     && apt-get install -y   curl"
    );
    assert_eq!(
        b[0].command,
        Command::Run(Form::Shell(
            "apt-get update     && apt-get install -y   curl".into()
        ))
    );
    assert_eq!(b[0].line, 2);
}
