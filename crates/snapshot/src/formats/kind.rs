//! The names of the formats: what a source file holds.

use std::fmt;

/// What a source file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    /// The record format.
    pub kind: FormatKind,
    /// Whether the file is zstd-compressed.
    pub zstd: bool,
}

/// The record formats `af` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatKind {
    /// `af`'s own JSON Lines snapshot.
    Native,
    /// HTTP Archive 1.2.
    Har,
    /// proxymock RRPair JSON: one object per file, or JSON Lines.
    ProxymockJson,
    /// proxymock RRPair markdown: one exchange per file.
    ProxymockMarkdown,
}

impl Format {
    /// True for native snapshots (which can be read in parallel).
    pub fn is_native(self) -> bool {
        self.kind == FormatKind::Native
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            FormatKind::Native => "af-snapshot",
            FormatKind::Har => "har",
            FormatKind::ProxymockJson => "proxymock-json",
            FormatKind::ProxymockMarkdown => "proxymock-markdown",
        })?;
        if self.zstd {
            f.write_str("+zstd")?;
        }
        Ok(())
    }
}
