//! The parser's driver: logical lines to instructions to stages.
//!
//! What it does: reads logical lines (see `lines`), parses each into an
//! [`Instruction`] (see `instr`), reads the heredoc bodies that follow RUN/
//! COPY/ADD (and ONBUILD of those) in shell form, and groups instructions:
//! ARGs before the first FROM are global, every FROM opens a [`Stage`].
//! Errors carry the file, the instruction's first line and its keyword.
//!
//! What it deliberately does not do: resolve stage references, expand
//! variables or check that stage names are unique; the executor does that.

use super::instr::{keyword_of, parse_instruction};
use super::lines::Reader;
use super::{heredoc, Command, Containerfile, ParseError, Stage};

/// Parses a Containerfile. `file_name` is only used in error messages.
///
/// # Errors
///
/// The first syntax error in file order, with the line where its
/// instruction starts and the instruction's keyword.
pub fn parse(file_name: &str, text: &str) -> Result<Containerfile, ParseError> {
    let mut reader = Reader::new(file_name, text);
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut seen_any = false;
    while let Some(logical) = reader.next_instruction()? {
        seen_any = true;
        let keyword = keyword_of(&logical.text);
        let fail = |msg: String| ParseError::new(file_name, logical.line, &keyword, msg);
        let parsed = parse_instruction(&logical.text, logical.line, reader.escape).map_err(fail)?;
        let mut instruction = parsed.instruction;
        if parsed.heredocs {
            let markers = heredoc::find_markers(&logical.text);
            let docs = heredoc::read_bodies(markers, &mut reader.src)
                .map_err(|name| fail(format!("unterminated heredoc {name}")))?;
            if let Command::Onbuild(trigger) = &mut instruction.command {
                trigger.heredocs.clone_from(&docs);
            }
            instruction.heredocs = docs;
        }
        match &instruction.command {
            Command::From { alias, .. } => stages.push(Stage {
                index: stages.len(),
                name: alias.clone(),
                from: instruction,
                instructions: Vec::new(),
            }),
            Command::Arg(_) if stages.is_empty() => global_args.push(instruction),
            _ => match stages.last_mut() {
                Some(stage) => stage.instructions.push(instruction),
                None => return Err(fail(
                    "no build stage in current context: only ARG may come before the first FROM"
                        .into(),
                )),
            },
        }
    }
    let last_line = reader.src.line_no().max(1);
    if !seen_any {
        return Err(ParseError::new(
            file_name,
            last_line,
            "",
            "file with no instructions",
        ));
    }
    if stages.is_empty() {
        return Err(ParseError::new(
            file_name,
            last_line,
            "",
            "no FROM instruction: the file has no build stage",
        ));
    }
    Ok(Containerfile {
        global_args,
        stages,
        escape: reader.escape,
    })
}
