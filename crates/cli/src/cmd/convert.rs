//! `af convert` (any format to any written format) and `af import` (sources into one native
//! snapshot). Exchanges stream through; nothing is held in memory but the current one.

use std::path::{Path, PathBuf};

use af_snapshot::{OutputFormat, ReadOptions, ReadSummary, SnapshotError, Writer, read_path};

use crate::args::{ConvertArgs, ImportArgs};
use crate::exit::{self, UsageError};

fn check_output(output: &Path, inputs: &[PathBuf], force: bool) -> Result<(), UsageError> {
    // The output's directory exists (or the error says so below); compare real paths.
    let out_real = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| std::env::current_dir().ok(), |p| std::fs::canonicalize(p).ok())
        .zip(output.file_name())
        .map(|(dir, name)| dir.join(name));
    for i in inputs {
        let Ok(input) = std::fs::canonicalize(i) else { continue };
        let Some(out) = &out_real else { continue };
        if *out == input {
            return Err(UsageError(format!(
                "{}: output is the same file as an input",
                output.display()
            )));
        }
        // A file written inside a directory that is read as input would be read back the next
        // time that directory is (`af inspect DIR` counting every exchange twice).
        if input.is_dir() && out.starts_with(&input) {
            return Err(UsageError(format!(
                "{}: output would be inside the input directory {}; write it elsewhere (-o)",
                output.display(),
                i.display()
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
    super::common::warn_skipped(total);
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

/// Extensions of the formats af reads, longest first: what `default_output` replaces.
const CAPTURE_EXTENSIONS: &[&str] =
    &[".har.json", ".jsonl.zst", ".har", ".jsonl", ".ndjson", ".json", ".md", ".zst"];

/// `capture.har` → `capture.jsonl` beside it; a directory `recorded-2026-06-12_18-12-07.394946Z`
/// → `recorded-2026-06-12_18-12-07.394946Z.jsonl` beside it (never inside: the directory is an
/// input), its whole name kept (two recordings of the same second must not collide).
fn default_output(input: &Path) -> PathBuf {
    // `.` and `dir/.` name a directory by its real path.
    let real = std::fs::canonicalize(input).unwrap_or_else(|_| input.to_owned());
    let named = if input.file_name().is_some() { input.to_owned() } else { real.clone() };
    let name = named
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "capture".into());
    let stem = if real.is_dir() {
        name.as_str()
    } else {
        let lower = name.to_ascii_lowercase();
        CAPTURE_EXTENSIONS
            .iter()
            .find(|e| lower.ends_with(*e) && lower.len() > e.len())
            .map_or(name.as_str(), |e| &name[..name.len() - e.len()])
    };
    named.with_file_name(format!("{stem}.jsonl"))
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
        assert_eq!(
            default_output(Path::new("x/2026-06-12_18-12-15.434167Z.md")),
            PathBuf::from("x/2026-06-12_18-12-15.434167Z.jsonl"),
            "the sub-second part of a proxymock name is kept"
        );
        let dir = tempfile::tempdir().expect("tmp");
        let rec = dir.path().join("recorded-2026-06-12_18-12-07.394946Z");
        std::fs::create_dir(&rec).expect("mkdir");
        assert_eq!(
            default_output(&rec),
            dir.path().join("recorded-2026-06-12_18-12-07.394946Z.jsonl"),
            "a directory's whole name, beside it"
        );
        let dotted = rec.join(".");
        let real = std::fs::canonicalize(&rec).expect("real");
        assert_eq!(
            default_output(&dotted),
            real.with_file_name("recorded-2026-06-12_18-12-07.394946Z.jsonl"),
            "`DIR/.` is the directory, and the output is not inside it"
        );
    }

    #[test]
    fn an_output_inside_an_input_directory_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let err = check_output(&dir.path().join("x.jsonl"), &[dir.path().to_owned()], false)
            .expect_err("inside");
        assert!(err.0.contains("inside the input directory"), "{}", err.0);
        assert!(
            check_output(&dir.path().join("x.jsonl"), &[dir.path().join("a.har")], false).is_ok()
        );
    }
}
