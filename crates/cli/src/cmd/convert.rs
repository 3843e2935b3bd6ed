//! `af convert` (any format to any written format) and `af import` (sources into one native
//! snapshot). Exchanges stream through; nothing is held in memory but the current one.

use std::path::{Path, PathBuf};

use af_snapshot::{OutputFormat, ReadOptions, ReadSummary, SnapshotError, Writer, read_path};

use crate::args::{ConvertArgs, ImportArgs};
use crate::exit::{self, UsageError};

fn check_output(output: &Path, inputs: &[PathBuf], force: bool) -> Result<(), UsageError> {
    for i in inputs {
        if let (Ok(a), Ok(b)) = (std::fs::canonicalize(i), std::fs::canonicalize(output))
            && a == b
        {
            return Err(UsageError(format!(
                "{}: output is the same file as an input",
                output.display()
            )));
        }
    }
    if output.exists() && !force {
        return Err(UsageError(format!(
            "{}: already exists (use --force to overwrite)",
            output.display()
        )));
    }
    Ok(())
}

/// Streams every input into `output`. On failure the partial output is removed.
fn copy(
    inputs: &[PathBuf],
    output: &Path,
    format: OutputFormat,
    opts: ReadOptions,
) -> anyhow::Result<ReadSummary> {
    let mut writer = Writer::create(output, format, false)?;
    let mut total = ReadSummary::default();
    let result = (|| -> anyhow::Result<()> {
        for input in inputs {
            let mut write_err: Option<SnapshotError> = None;
            let s = read_path(input, opts, &mut |ex| {
                if write_err.is_none()
                    && let Err(e) = writer.write(&ex)
                {
                    write_err = Some(e);
                }
            })?;
            if let Some(e) = write_err {
                return Err(e.into());
            }
            total.merge(s);
        }
        Ok(())
    })();
    match result {
        Ok(()) => {
            writer.finish()?;
            Ok(total)
        }
        Err(e) => {
            drop(writer);
            let _ = std::fs::remove_file(output);
            Err(e)
        }
    }
}

fn report(total: &ReadSummary, output: &Path, format: OutputFormat) {
    let kinds: Vec<String> = {
        let mut v: Vec<String> = total.files.iter().map(|(_, f)| f.to_string()).collect();
        v.sort();
        v.dedup();
        v
    };
    let out_kind = match format {
        OutputFormat::Har => "har",
        OutputFormat::Native { zstd: true } => "af-snapshot+zstd",
        OutputFormat::Native { zstd: false } => "af-snapshot",
    };
    eprintln!(
        "wrote {} exchange{} from {} file{} ({}) to {} ({out_kind})",
        total.exchanges,
        if total.exchanges == 1 { "" } else { "s" },
        total.files.len(),
        if total.files.len() == 1 { "" } else { "s" },
        kinds.join(", "),
        output.display()
    );
    eprint!("{}", crate::render::read_notes(total));
    super::warn_skipped(total);
}

pub fn convert(a: ConvertArgs) -> anyhow::Result<i32> {
    let format = OutputFormat::for_path(&a.output)?;
    let inputs = vec![a.input];
    check_output(&a.output, &inputs, a.force)?;
    let total = copy(
        &inputs,
        &a.output,
        format,
        ReadOptions { lenient: a.read.lenient, ..ReadOptions::default() },
    )?;
    report(&total, &a.output, format);
    Ok(exit::OK)
}

/// `capture.har` → `capture.jsonl`; `recorded-2025/` → `recorded-2025.jsonl`.
fn default_output(input: &Path) -> PathBuf {
    let trimmed = input.components().as_path();
    let name = trimmed
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "capture".into());
    let stem = name.split('.').next().filter(|s| !s.is_empty()).unwrap_or("capture");
    trimmed.with_file_name(format!("{stem}.jsonl"))
}

pub fn import(a: &ImportArgs) -> anyhow::Result<i32> {
    let output = a.output.clone().unwrap_or_else(|| default_output(&a.inputs[0]));
    let format = OutputFormat::for_path(&output)?;
    if format == OutputFormat::Har {
        return Err(UsageError(format!(
            "{}: import writes native snapshots; use `af convert` for HAR",
            output.display()
        ))
        .into());
    }
    check_output(&output, &a.inputs, a.force)?;
    let total = copy(
        &a.inputs,
        &output,
        format,
        ReadOptions { lenient: a.read.lenient, ..ReadOptions::default() },
    )?;
    report(&total, &output, format);
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_output_names() {
        assert_eq!(default_output(Path::new("caps/gmail.har")), PathBuf::from("caps/gmail.jsonl"));
        assert_eq!(default_output(Path::new("recorded-x/")), PathBuf::from("recorded-x.jsonl"));
    }
}
