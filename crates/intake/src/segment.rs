//! The segment log: records are appended here and synced to disk *before* the intake
//! acknowledges them, so an acknowledged record survives `kill -9`; start-up replays what the
//! ledger has not yet analysed.
//!
//! Layout: `DIR/00000001.seg`, `DIR/00000002.seg`, …; each frame is
//! `len: u32 LE | crc32(payload): u32 LE | payload` where the payload is one [`Record`] as JSON.
//! A frame cut short or failing its CRC at the end of the *last* segment is a write the crash
//! interrupted — never acknowledged, since the sync comes first — and is truncated away. The
//! same anywhere else is corruption: replay stops reading that segment and says how many bytes it
//! could not read ([`Replay::corrupt`]).

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::Record;

/// Frames larger than this are refused on write and taken as corruption on read.
pub const MAX_FRAME: u32 = 64 << 20;

/// An open segment log.
pub struct SegmentLog {
    dir: PathBuf,
    current: File,
    current_id: u64,
    current_len: u64,
    /// A new segment starts past this size.
    pub max_segment: u64,
}

/// What start-up found in the log.
#[derive(Debug, Default)]
pub struct Replay {
    /// Every record, with the segment it is in.
    pub records: Vec<(u64, Record)>,
    /// Bytes of an interrupted last write, truncated.
    pub torn_bytes: u64,
    /// Segments that could not be read to their end, with the offset reading stopped at.
    pub corrupt: Vec<(PathBuf, u64)>,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:08}.seg"))
}

fn segment_ids(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".seg")) else { continue };
        if let Ok(id) = stem.parse::<u64>() {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// One segment's frames; the offset after the last whole frame, and whether reading stopped
/// at a bad frame.
fn read_segment(path: &Path, out: &mut Vec<(u64, Record)>, id: u64) -> io::Result<(u64, bool)> {
    let mut r = BufReader::new(File::open(path)?);
    let mut at = 0u64;
    let mut head = [0u8; 8];
    loop {
        match read_exact_or_eof(&mut r, &mut head)? {
            0 => return Ok((at, false)),
            8 => {}
            _ => return Ok((at, true)),
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len > MAX_FRAME {
            return Ok((at, true));
        }
        let mut payload = vec![0u8; len as usize];
        if read_exact_or_eof(&mut r, &mut payload)? != payload.len() {
            return Ok((at, true));
        }
        if crc32fast::hash(&payload) != crc {
            return Ok((at, true));
        }
        match serde_json::from_slice::<Record>(&payload) {
            Ok(rec) => out.push((id, rec)),
            Err(_) => return Ok((at, true)),
        }
        at += 8 + u64::from(len);
    }
}

fn read_exact_or_eof(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl SegmentLog {
    /// Opens (creating) the log in `dir` and replays it.
    pub fn open(dir: &Path) -> io::Result<(Self, Replay)> {
        std::fs::create_dir_all(dir)?;
        let ids = segment_ids(dir)?;
        let mut replay = Replay::default();
        for (i, &id) in ids.iter().enumerate() {
            let path = segment_path(dir, id);
            let before = replay.records.len();
            let (good, bad) = read_segment(&path, &mut replay.records, id)?;
            if !bad && replay.records.len() == before {
                std::fs::remove_file(&path)?; // an empty segment of an earlier start
                continue;
            }
            if bad {
                let len = std::fs::metadata(&path)?.len();
                if i + 1 == ids.len() {
                    // The interrupted last write: cut it off so appends follow whole frames.
                    replay.torn_bytes = len - good;
                    OpenOptions::new().write(true).open(&path)?.set_len(good)?;
                } else {
                    replay.corrupt.push((path, good));
                }
            }
        }
        let current_id = ids.last().map_or(1, |&id| id + 1);
        let path = segment_path(dir, current_id);
        let current = OpenOptions::new().create(true).append(true).open(&path)?;
        sync_dir(dir)?;
        Ok((
            Self {
                dir: dir.to_owned(),
                current,
                current_id,
                current_len: 0,
                max_segment: 64 << 20,
            },
            replay,
        ))
    }

    /// Appends `records` and syncs them to disk; returns the segment they are in. Only after
    /// this returns may they be acknowledged.
    pub fn append(&mut self, records: &[Record]) -> io::Result<u64> {
        let mut buf = Vec::with_capacity(records.len() * 512);
        for r in records {
            encode_into(r, &mut buf)?;
        }
        self.append_encoded(&buf)
    }

    /// Appends frames made by [`encode_into`] (several requests' at once: one sync for all).
    pub fn append_encoded(&mut self, frames: &[u8]) -> io::Result<u64> {
        if self.current_len >= self.max_segment {
            self.rotate()?;
        }
        self.current.write_all(frames)?;
        self.current.sync_data()?;
        self.current_len += frames.len() as u64;
        Ok(self.current_id)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.current_id += 1;
        let path = segment_path(&self.dir, self.current_id);
        self.current = OpenOptions::new().create(true).append(true).open(&path)?;
        self.current.seek(SeekFrom::End(0))?;
        self.current_len = 0;
        sync_dir(&self.dir)
    }

    /// Deletes segment `id` (every record in it analysed). The current segment is kept.
    pub fn remove(&mut self, id: u64) -> io::Result<()> {
        if id == self.current_id {
            return Ok(());
        }
        match std::fs::remove_file(segment_path(&self.dir, id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Appends one record's frame to `buf`; returns the frame's length.
pub fn encode_into(r: &Record, buf: &mut Vec<u8>) -> io::Result<usize> {
    let at = buf.len();
    buf.extend_from_slice(&[0u8; 8]);
    serde_json::to_writer(&mut *buf, r).map_err(io::Error::other)?;
    let payload = &buf[at + 8..];
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&l| l <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "record over 64 MiB"))?;
    let crc = crc32fast::hash(payload);
    buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
    buf[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(buf.len() - at)
}

/// The payloads of frames [`encode_into`] wrote one after another into `buf`, in order (a
/// frame cut short ends the walk).
pub fn payloads(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let head = buf.get(at..at + 8)?;
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let payload = buf.get(at + 8..at + 8 + len)?;
        at += 8 + len;
        Some(payload)
    })
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: u32) -> Record {
        let line = format!(
            r#"{{"id":"e{i}","request":{{"method":"GET","url":"http://api.test/x/{i}","headers":[]}},"timing":{{"start":"2026-01-01T00:00:00Z"}}}}"#
        );
        Record { service: "svc".into(), exchange: serde_json::from_str(&line).expect("exchange") }
    }

    #[test]
    fn payloads_walk_the_frames_in_order() {
        let mut buf = Vec::new();
        for i in 0..3 {
            encode_into(&record(i), &mut buf).expect("encode");
        }
        let back: Vec<Record> =
            payloads(&buf).map(|p| serde_json::from_slice(p).expect("record")).collect();
        assert_eq!(back, (0..3).map(record).collect::<Vec<_>>());
        assert_eq!(payloads(&buf[..buf.len() - 1]).count(), 2, "a cut frame ends the walk");
    }

    #[test]
    fn replays_what_was_appended_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (mut log, replay) = SegmentLog::open(dir.path()).expect("open");
            assert!(replay.records.is_empty());
            log.append(&[record(1), record(2)]).expect("append");
            log.append(&[record(3)]).expect("append");
        }
        // A write the crash interrupted: half a frame at the end of the last segment.
        let last = segment_ids(dir.path()).expect("ids").into_iter().max().expect("a segment");
        let mut f =
            OpenOptions::new().append(true).open(segment_path(dir.path(), last)).expect("f");
        f.write_all(&[200, 0, 0, 0, 1, 2]).expect("torn");
        drop(f);
        let (mut log, replay) = SegmentLog::open(dir.path()).expect("reopen");
        let ids: Vec<_> = replay.records.iter().map(|(_, r)| r.exchange.id.to_string()).collect();
        assert_eq!(ids, ["e1", "e2", "e3"]);
        assert_eq!(replay.torn_bytes, 6);
        assert!(replay.corrupt.is_empty());
        log.append(&[record(4)]).expect("append after replay");
        drop(log);
        let (_, replay) = SegmentLog::open(dir.path()).expect("third open");
        assert_eq!(replay.records.len(), 4);
        assert_eq!(replay.torn_bytes, 0);
    }

    #[test]
    fn a_bad_frame_before_the_last_segment_is_reported_not_hidden() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (mut log, _) = SegmentLog::open(dir.path()).expect("open");
            log.append(&[record(1), record(2)]).expect("append");
        }
        drop(SegmentLog::open(dir.path()).expect("a second start opens segment 2"));
        let first = segment_ids(dir.path()).expect("ids")[0];
        let path = segment_path(dir.path(), first);
        let mut bytes = std::fs::read(&path).expect("read");
        let n = bytes.len();
        bytes[n - 3] ^= 0xff;
        std::fs::write(&path, bytes).expect("write");
        let (_, replay) = SegmentLog::open(dir.path()).expect("reopen");
        assert_eq!(replay.records.len(), 1);
        assert_eq!(replay.corrupt.len(), 1, "{replay:?}");
    }
}
