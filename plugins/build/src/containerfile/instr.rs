//! One logical line to one [`Instruction`], with the dockerfile frontend's
//! per-instruction argument rules.
//!
//! What it does: splits the keyword off, takes the flags (see `flags`),
//! then shapes the arguments as BuildKit's line parsers and `instructions`
//! package do: JSON-or-shell form for RUN/CMD/ENTRYPOINT/SHELL/HEALTHCHECK,
//! JSON-or-whitespace list for COPY/ADD/VOLUME, quote-aware `key=value` words
//! for ENV/LABEL/ARG (with the legacy `ENV key value` form), whitespace words
//! for FROM/EXPOSE, the raw rest for USER/WORKDIR/STOPSIGNAL/MAINTAINER, a
//! nested instruction for ONBUILD. Argument-count errors use Docker's wording.
//!
//! What it deliberately does not do: read heredoc bodies (see `heredoc`),
//! place instructions in stages (see `parse`), expand or unquote values.

use super::json::{parse_string_array, JsonArray};
use super::{flags, heredoc, Command, Form, Healthcheck, Instruction};

/// A parsed instruction and whether heredocs may follow it.
pub(super) struct Parsed {
    pub instruction: Instruction,
    pub heredocs: bool,
}

const KEYWORDS: &[&str] = &[
    "FROM",
    "RUN",
    "CMD",
    "ENTRYPOINT",
    "SHELL",
    "COPY",
    "ADD",
    "ENV",
    "ARG",
    "LABEL",
    "EXPOSE",
    "VOLUME",
    "USER",
    "WORKDIR",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "ONBUILD",
    "MAINTAINER",
];

/// Docker's token separator (`[\t\v\f\r ]`).
fn is_token_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{b}' | '\u{c}' | '\r')
}

/// Keyword (as written) and the text after it.
pub(super) fn split_command(text: &str) -> (&str, &str) {
    let t = text.trim();
    match t.find(is_token_ws) {
        Some(i) => (&t[..i], t[i..].trim_start_matches(is_token_ws)),
        None => (t, ""),
    }
}

/// The uppercase keyword of a logical line (for error reports).
pub(super) fn keyword_of(text: &str) -> String {
    split_command(text).0.to_ascii_uppercase()
}

fn split_ws(text: &str) -> Vec<String> {
    text.split(is_token_ws)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn at_least_one(kw: &str) -> String {
    format!("{kw} requires at least one argument")
}

fn exactly_one(kw: &str) -> String {
    format!("{kw} requires exactly one argument")
}

/// JSON exec form if `args` is a JSON string array; an error if it is a
/// JSON array of something else; `None` for shell form.
fn maybe_json(args: &str) -> Result<Option<Vec<String>>, String> {
    if !args.starts_with('[') {
        return Ok(None);
    }
    match parse_string_array(args) {
        JsonArray::Strings(v) => Ok(Some(v)),
        JsonArray::NotStrings => {
            Err("when using JSON array syntax, arrays must be comprised of strings only".into())
        }
        JsonArray::Invalid => Ok(None),
    }
}

fn form(args: &str) -> Result<Form, String> {
    Ok(match maybe_json(args)? {
        Some(v) => Form::Exec(v),
        None => Form::Shell(args.to_string()),
    })
}

/// JSON array, else whitespace-separated words; and whether it was JSON.
fn list(args: &str) -> Result<(Vec<String>, bool), String> {
    Ok(match maybe_json(args)? {
        Some(v) => (v, true),
        None => (split_ws(args), false),
    })
}

/// Docker's `parseWords`: split on unquoted whitespace, keeping quotes and
/// escapes in the words.
pub(super) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut in_word, mut blank_ok) = (false, false);
    let mut quote: Option<char> = None;
    let mut i = 0;
    while let Some(&ch) = chars.get(i) {
        i += 1;
        if !in_word && quote.is_none() {
            if ch.is_whitespace() {
                continue;
            }
            in_word = true;
        }
        let escapes = ch == escape && quote != Some('\'');
        if quote.is_none() && ch.is_whitespace() {
            if blank_ok || !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            (in_word, blank_ok) = (false, false);
            continue;
        }
        if quote == Some(ch) {
            quote = None;
        } else if quote.is_none() && (ch == '\'' || ch == '"') {
            (quote, blank_ok) = (Some(ch), true);
        } else if escapes {
            match chars.get(i) {
                Some(&n) => {
                    word.push(ch);
                    word.push(n);
                    i += 1;
                }
                None => quote = None,
            }
            continue;
        }
        word.push(ch);
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// ENV and LABEL: `k=v ...` or the legacy `k value with spaces`.
fn name_values(kw: &str, args: &str, escape: char) -> Result<Vec<(String, String)>, String> {
    let words = parse_words(args, escape);
    let Some(first) = words.first() else {
        return Err(at_least_one(kw));
    };
    let pairs = if first.contains('=') {
        let mut pairs = Vec::new();
        for w in &words {
            match w.split_once('=') {
                Some((k, v)) => pairs.push((k.to_string(), v.to_string())),
                None => {
                    return Err(format!(
                        "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
                    ))
                }
            }
        }
        pairs
    } else {
        // Legacy `KEY value...`: the value is the raw rest of the line.
        match args.find(is_token_ws) {
            Some(i) => vec![(
                args[..i].to_string(),
                args[i..].trim_start_matches(is_token_ws).to_string(),
            )],
            None => return Err(format!("{kw} must have two arguments")),
        }
    };
    if pairs.iter().any(|(k, _)| k.is_empty()) {
        return Err(format!("{kw} names can not be blank"));
    }
    Ok(pairs)
}

fn parse_from(args: &str) -> Result<Command, String> {
    let words = split_ws(args);
    match words.as_slice() {
        [image] => Ok(Command::From {
            image: image.clone(),
            alias: None,
        }),
        [image, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
            let lower = name.to_lowercase();
            let mut chars = lower.chars();
            let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
                });
            if !valid {
                return Err(format!(
                    "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
                ));
            }
            Ok(Command::From {
                image: image.clone(),
                alias: Some(lower),
            })
        }
        _ => Err("FROM requires either one or three arguments".into()),
    }
}

fn parse_shell(args: &str) -> Result<Command, String> {
    if args.is_empty() {
        return Err(at_least_one("SHELL"));
    }
    match maybe_json(args)? {
        Some(v) if v.is_empty() => Err(at_least_one("SHELL")),
        Some(v) => Ok(Command::Shell(v)),
        None => Err("SHELL requires the arguments to be in JSON form".into()),
    }
}

/// COPY and ADD; also whether the arguments were in JSON form.
fn parse_copy_add(keyword: &str, args: &str) -> Result<(Command, bool), String> {
    let (mut sources, json) = list(args)?;
    let Some(dest) = sources.pop().filter(|_| !sources.is_empty()) else {
        return Err(format!(
            "{keyword} requires at least two arguments, but only one was provided. Destination could not be determined"
        ));
    };
    if heredoc::parse_marker(&dest).is_some() {
        return Err(format!(
            "{keyword} cannot accept a heredoc as a destination"
        ));
    }
    let cmd = if keyword == "COPY" {
        Command::Copy { sources, dest }
    } else {
        Command::Add { sources, dest }
    };
    Ok((cmd, json))
}

fn parse_arg(args: &str, escape: char) -> Result<Command, String> {
    let words = parse_words(args, escape);
    if words.is_empty() {
        return Err(at_least_one("ARG"));
    }
    let mut pairs = Vec::new();
    for w in words {
        let pair = match w.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (w, None),
        };
        if pair.0.is_empty() {
            return Err("ARG names can not be blank".into());
        }
        pairs.push(pair);
    }
    Ok(Command::Arg(pairs))
}

fn parse_volume(args: &str) -> Result<Command, String> {
    let (words, _) = list(args)?;
    if words.is_empty() {
        return Err(at_least_one("VOLUME"));
    }
    let words: Vec<String> = words.iter().map(|w| w.trim().to_string()).collect();
    if words.iter().any(String::is_empty) {
        return Err("VOLUME specified can not be an empty string".into());
    }
    Ok(Command::Volume(words))
}

fn parse_healthcheck(args: &str) -> Result<Command, String> {
    let (typ, rest) = match args.find(char::is_whitespace) {
        Some(i) => (&args[..i], args[i..].trim_start()),
        None => (args, ""),
    };
    if typ.is_empty() {
        return Err(at_least_one("HEALTHCHECK"));
    }
    let typ = typ.to_ascii_uppercase();
    match typ.as_str() {
        "NONE" if rest.is_empty() => Ok(Command::Healthcheck(Healthcheck::None)),
        "NONE" => Err("HEALTHCHECK NONE takes no arguments".into()),
        "CMD" => match form(rest)? {
            Form::Exec(v) if v.is_empty() => Err("Missing command after HEALTHCHECK CMD".into()),
            Form::Shell(s) if s.is_empty() => Err("Missing command after HEALTHCHECK CMD".into()),
            test => Ok(Command::Healthcheck(Healthcheck::Check { test })),
        },
        _ => Err(format!("Unknown type {typ:?} in HEALTHCHECK (try CMD)")),
    }
}

fn parse_onbuild(args: &str, line: usize, escape: char) -> Result<(Command, bool), String> {
    if args.is_empty() {
        return Err(at_least_one("ONBUILD"));
    }
    match keyword_of(args).as_str() {
        "ONBUILD" => return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()),
        kw @ ("FROM" | "MAINTAINER") => {
            return Err(format!("{kw} isn't allowed as an ONBUILD trigger"))
        }
        _ => {}
    }
    let inner = parse_instruction(args, line, escape)?;
    Ok((
        Command::Onbuild(Box::new(inner.instruction)),
        inner.heredocs,
    ))
}

/// Parses one logical line (continuations already joined).
pub(super) fn parse_instruction(text: &str, line: usize, escape: char) -> Result<Parsed, String> {
    let (kw, rest) = split_command(text);
    let keyword = kw.to_ascii_uppercase();
    if !KEYWORDS.contains(&keyword.as_str()) {
        return Err(format!("unknown instruction: {keyword}"));
    }
    let (flag_words, args) = flags::extract(rest);
    let args = args.trim();
    let flags = flags::validate(&keyword, &flag_words)?;
    let raw_one = |kw: &str| {
        if args.is_empty() {
            Err(exactly_one(kw))
        } else {
            Ok(args.to_string())
        }
    };
    let mut heredocs = false;
    let command = match keyword.as_str() {
        "FROM" => parse_from(args)?,
        "RUN" | "CMD" | "ENTRYPOINT" if args.is_empty() => return Err(at_least_one(&keyword)),
        "RUN" => {
            let f = form(args)?;
            heredocs = matches!(f, Form::Shell(_));
            Command::Run(f)
        }
        "CMD" => Command::Cmd(form(args)?),
        "ENTRYPOINT" => Command::Entrypoint(form(args)?),
        "SHELL" => parse_shell(args)?,
        "COPY" | "ADD" => {
            let (cmd, json) = parse_copy_add(&keyword, args)?;
            heredocs = !json;
            cmd
        }
        "ENV" => Command::Env(name_values("ENV", args, escape)?),
        "LABEL" => Command::Label(name_values("LABEL", args, escape)?),
        "ARG" => parse_arg(args, escape)?,
        "EXPOSE" if args.is_empty() => return Err(at_least_one("EXPOSE")),
        "EXPOSE" => Command::Expose(split_ws(args)),
        "VOLUME" => parse_volume(args)?,
        "USER" => Command::User(raw_one("USER")?),
        "WORKDIR" => Command::Workdir(raw_one("WORKDIR")?),
        "STOPSIGNAL" => Command::StopSignal(raw_one("STOPSIGNAL")?),
        "MAINTAINER" => Command::Maintainer(raw_one("MAINTAINER")?),
        "HEALTHCHECK" => parse_healthcheck(args)?,
        _ => {
            let (cmd, inner_heredocs) = parse_onbuild(args, line, escape)?;
            heredocs = inner_heredocs;
            cmd
        }
    };
    Ok(Parsed {
        instruction: Instruction {
            line,
            keyword,
            flags,
            command,
            original: text.trim().to_string(),
            heredocs: Vec::new(),
        },
        heredocs,
    })
}
