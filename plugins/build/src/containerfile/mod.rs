//! Containerfile (Dockerfile) parsing with Docker/BuildKit semantics.
//!
//! What it does:
//! - Turns the text of a Containerfile into typed [`Instruction`]s grouped in
//!   build [`Stage`]s, the way BuildKit's dockerfile frontend does in its
//!   `parser` and `instructions` packages: parser directives (`# escape=`,
//!   `# syntax=`, `# check=`), comments, line continuations, case-insensitive
//!   keywords, `--flags`, JSON (exec) versus shell form, ENV/LABEL/ARG pairs,
//!   FROM ... AS, HEALTHCHECK, ONBUILD triggers and heredocs (`<<EOF`).
//! - Reports every error as a [`ParseError`] naming the file, the line where
//!   the instruction starts and the instruction keyword.
//! - Provides, in [`lex`], the shell-word processor (quote removal and
//!   `$VAR`/`${VAR...}` expansion) that the executor applies later.
//!
//! What it deliberately does not do:
//! - No variable expansion at parse time: FROM images, flag values, ENV/LABEL/
//!   ARG values and paths are kept raw (quotes kept) for the executor, which
//!   expands them with [`lex::Lexer`] in the right scope (global ARGs, stage
//!   ARG/ENV).
//! - No semantic checks that need the build context or the environment:
//!   `--from` targets, `--mount` syntax, HEALTHCHECK durations and retries,
//!   platform strings and duplicate stage names are left to the executor.
//! - No linter warnings (empty continuation lines, casing, ...), no
//!   "did you mean" suggestions for unknown instructions, no Windows drive
//!   letter handling for WORKDIR.
//!
//! Layout: [`parse`] drives everything; `lines` assembles logical lines from
//! the text (directives, comments, continuations), `instr` and `flags` turn a
//! logical line into an [`Instruction`], `json` is the tiny JSON string-array
//! parser for exec form, `heredoc` finds heredoc markers and reads bodies,
//! [`lex`] expands words and `pattern` is its `${VAR#pat}` wildcard matcher.

pub mod lex;

mod flags;
mod heredoc;
mod instr;
mod json;
mod lines;
mod parse;
mod pattern;

#[cfg(test)]
mod tests;

use std::fmt;

pub use parse::parse;

/// An error that names the file, line and instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The file name given to [`parse`].
    pub file: String,
    /// 1-based line where the offending instruction (or directive) starts.
    pub line: usize,
    /// Uppercase instruction keyword, or "" for file-level errors.
    pub instruction: String,
    /// What went wrong.
    pub message: String,
}

impl ParseError {
    fn new(file: &str, line: usize, instruction: &str, message: impl Into<String>) -> Self {
        ParseError {
            file: file.to_string(),
            line,
            instruction: instruction.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.instruction.is_empty() {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        } else {
            write!(
                f,
                "{}:{}: {}: {}",
                self.file, self.line, self.instruction, self.message
            )
        }
    }
}

impl std::error::Error for ParseError {}

/// A parsed Containerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Containerfile {
    /// ARG instructions before the first FROM (their values raw).
    pub global_args: Vec<Instruction>,
    /// Build stages in file order.
    pub stages: Vec<Stage>,
    /// The escape character from the `# escape=` directive, default '\\'.
    pub escape: char,
}

/// One build stage: a FROM and the instructions up to the next FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// 0-based position among the stages (what `--from=0` refers to).
    pub index: usize,
    /// From `AS name`, lowercased (stage names are case-insensitive).
    pub name: Option<String>,
    /// The FROM instruction itself (always [`Command::From`]).
    pub from: Instruction,
    /// Everything after FROM up to the next FROM.
    pub instructions: Vec<Instruction>,
}

/// One instruction with its flags, arguments and heredoc bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line where the instruction starts.
    pub line: usize,
    /// Uppercase keyword, e.g. "RUN".
    pub keyword: String,
    /// `--name=value` / `--name` flags in order (quotes removed as Docker
    /// does, values not expanded).
    pub flags: Vec<Flag>,
    /// The typed arguments.
    pub command: Command,
    /// The instruction's text as Docker's `original`: continuation lines
    /// joined (escape char and trailing blanks removed, nothing inserted),
    /// then trimmed. Heredoc bodies are not part of it.
    pub original: String,
    /// Heredoc bodies in the order their markers appear on the line.
    pub heredocs: Vec<Heredoc>,
}

impl Instruction {
    /// The heredoc a word such as `<<EOF`, `<<-"EOF"` or `3<<EOF` (e.g. a
    /// COPY source) refers to, if the word is a heredoc marker.
    #[must_use]
    pub fn heredoc_for(&self, word: &str) -> Option<&Heredoc> {
        let marker = heredoc::parse_marker(word)?;
        self.heredocs.iter().find(|h| h.name == marker.name)
    }

    /// The value of the last `--name` flag (`Some(None)` for a bare flag).
    #[must_use]
    pub fn flag(&self, name: &str) -> Option<Option<&str>> {
        self.flags
            .iter()
            .rev()
            .find(|f| f.name == name)
            .map(|f| f.value.as_deref())
    }
}

/// A `--name=value` or `--name` flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// Name without the leading `--`.
    pub name: String,
    /// Text after the first `=`; `None` when there was no `=`.
    pub value: Option<String>,
}

/// A heredoc body attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter, quotes removed.
    pub name: String,
    /// The body, each line with its line ending; leading tabs already
    /// stripped when `chomp`.
    pub content: String,
    /// False when the delimiter was (partly) quoted: no expansion.
    pub expand: bool,
    /// True for `<<-`.
    pub chomp: bool,
    /// The `N` of `N<<EOF`.
    pub file_descriptor: Option<u32>,
}

/// Arguments in exec (JSON array) form or shell form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    /// JSON array form, strings decoded.
    Exec(Vec<String>),
    /// Raw text after the flags, trimmed, not expanded.
    Shell(String),
}

/// The typed arguments of an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `FROM image [AS name]`; `alias` is lowercased like [`Stage::name`].
    From {
        image: String,
        alias: Option<String>,
    },
    /// `RUN`; heredoc bodies are in [`Instruction::heredocs`], the shell
    /// text keeps the markers (e.g. "<<EOF" or "python3 <<EOF").
    Run(Form),
    Cmd(Form),
    Entrypoint(Form),
    /// SHELL must be in JSON form.
    Shell(Vec<String>),
    /// Raw words; heredoc sources appear as marker words ("<<EOF").
    Copy {
        sources: Vec<String>,
        dest: String,
    },
    Add {
        sources: Vec<String>,
        dest: String,
    },
    /// Raw keys and values (quotes kept in values).
    Env(Vec<(String, String)>),
    /// Names with optional raw defaults.
    Arg(Vec<(String, Option<String>)>),
    /// Raw keys and values.
    Label(Vec<(String, String)>),
    Expose(Vec<String>),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    StopSignal(String),
    Healthcheck(Healthcheck),
    /// The trigger parsed as an instruction (with the trigger's heredocs).
    Onbuild(Box<Instruction>),
    Maintainer(String),
}

/// HEALTHCHECK arguments; interval/timeout/start-period/start-interval/
/// retries stay in [`Instruction::flags`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    None,
    Check { test: Form },
}
