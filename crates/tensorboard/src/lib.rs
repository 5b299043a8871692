//! TensorBoard event files without TensorFlow: scalars and restart markers, written and
//! read back.
//!
//! An event file is a sequence of TFRecords, each holding one serialised `tensorflow.Event`
//! protobuf. Only the fields a training curve needs are encoded (by hand, from TensorFlow's
//! `core/util/event.proto` and `core/framework/summary.proto`):
//!
//! | message | field | number, type |
//! |---|---|---|
//! | `Event` | `wall_time` | 1, double (seconds since the Unix epoch) |
//! | | `step` | 2, int64 |
//! | | `file_version` | 3, string (`"brain.Event:2"`, the first record of a file) |
//! | | `summary` | 5, `Summary` |
//! | | `session_log` | 7, `SessionLog` (6 is the deprecated `log_message`) |
//! | `Summary` | `value` | 1, repeated `Summary.Value` |
//! | `Summary.Value` | `tag` | 1, string |
//! | | `simple_value` | 2, float |
//! | `SessionLog` | `status` | 1, enum (`START` = 1) |
//! | | `checkpoint_path` | 2, string |
//! | | `msg` | 3, string |
//!
//! A TFRecord is `u64 length (LE) · masked CRC-32C of those 8 bytes · data · masked CRC-32C
//! of data` ([`crc`]).
//!
//! # Resumed runs
//!
//! A run resumed from a checkpoint re-does the steps after it, and the events the crashed or
//! stopped process wrote for them stay in its file. [`EventWriter::restart_at`] writes a
//! `SessionLog` `START` at the first step to be redone; TensorBoard then drops every event of
//! an earlier file with a step at or past it (its "orphaned data" purge, which it applies to
//! files of version 2).

pub mod crc;
mod proto;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The `file_version` of the first record; version 2 turns on TensorBoard's purge on `START`.
pub const FILE_VERSION: &str = "brain.Event:2";

/// What can go wrong writing or reading an event file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a valid event file at byte {offset}: {what}")]
    Corrupt { path: PathBuf, offset: u64, what: String },
}

pub type Result<T> = std::result::Result<T, Error>;

/// One `tensorflow.Event`, as far as this crate knows its fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Seconds since the Unix epoch when the event was written.
    pub wall_time: f64,
    pub step: i64,
    pub payload: Payload,
}

/// The event's `what` (a protobuf `oneof`).
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    FileVersion(String),
    Summary(Vec<Value>),
    SessionLog(SessionLog),
    /// None of the above (a graph, a log message, …) or nothing at all.
    Other,
}

/// One `Summary.Value`; `simple_value` is `None` for other kinds of summaries (images,
/// histograms, tensors), whose contents are skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub tag: String,
    pub simple_value: Option<f32>,
}

/// A `SessionLog`: a marker of the training process's life.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionLog {
    pub status: SessionStatus,
    pub checkpoint_path: String,
    pub msg: String,
}

/// `SessionLog.SessionStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    Unspecified,
    /// The run (re)started here: earlier events at this step or later are orphans.
    Start,
    Stop,
    Checkpoint,
    Unknown(i64),
}

impl SessionStatus {
    fn code(self) -> i64 {
        match self {
            SessionStatus::Unspecified => 0,
            SessionStatus::Start => 1,
            SessionStatus::Stop => 2,
            SessionStatus::Checkpoint => 3,
            SessionStatus::Unknown(c) => c,
        }
    }

    fn from_code(c: i64) -> Self {
        match c {
            0 => SessionStatus::Unspecified,
            1 => SessionStatus::Start,
            2 => SessionStatus::Stop,
            3 => SessionStatus::Checkpoint,
            c => SessionStatus::Unknown(c),
        }
    }
}

impl Event {
    /// The `simple_value` of `tag` in this event's summary, if it has one.
    pub fn scalar(&self, tag: &str) -> Option<f32> {
        match &self.payload {
            Payload::Summary(values) => values.iter().find(|v| v.tag == tag).and_then(|v| v.simple_value),
            _ => None,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        proto::put_double(&mut buf, 1, self.wall_time);
        proto::put_int(&mut buf, 2, self.step);
        match &self.payload {
            Payload::FileVersion(v) => proto::put_bytes(&mut buf, 3, v.as_bytes()),
            Payload::Summary(values) => {
                let mut summary = Vec::new();
                for v in values {
                    let mut value = Vec::new();
                    proto::put_bytes(&mut value, 1, v.tag.as_bytes());
                    if let Some(x) = v.simple_value {
                        proto::put_float(&mut value, 2, x);
                    }
                    proto::put_bytes(&mut summary, 1, &value);
                }
                proto::put_bytes(&mut buf, 5, &summary);
            }
            Payload::SessionLog(log) => {
                let mut msg = Vec::new();
                proto::put_int(&mut msg, 1, log.status.code());
                if !log.checkpoint_path.is_empty() {
                    proto::put_bytes(&mut msg, 2, log.checkpoint_path.as_bytes());
                }
                if !log.msg.is_empty() {
                    proto::put_bytes(&mut msg, 3, log.msg.as_bytes());
                }
                proto::put_bytes(&mut buf, 7, &msg);
            }
            Payload::Other => {}
        }
        buf
    }

    fn decode(buf: &[u8]) -> std::result::Result<Event, String> {
        let mut event = Event { wall_time: 0.0, step: 0, payload: Payload::Other };
        for field in proto::Fields::new(buf) {
            match field? {
                (1, w) => event.wall_time = w.double("Event.wall_time")?,
                (2, w) => event.step = w.int("Event.step")?,
                (3, w) => event.payload = Payload::FileVersion(w.string("Event.file_version")?),
                (5, w) => event.payload = Payload::Summary(decode_summary(w.bytes("Event.summary")?)?),
                (7, w) => {
                    event.payload = Payload::SessionLog(decode_session_log(w.bytes("Event.session_log")?)?)
                }
                // Any other member of the oneof replaces what came before, as in protobuf.
                (4 | 6 | 8 | 9, _) => event.payload = Payload::Other,
                _ => {}
            }
        }
        Ok(event)
    }
}

fn decode_summary(buf: &[u8]) -> std::result::Result<Vec<Value>, String> {
    let mut values = Vec::new();
    for field in proto::Fields::new(buf) {
        if let (1, w) = field? {
            let mut value = Value { tag: String::new(), simple_value: None };
            for f in proto::Fields::new(w.bytes("Summary.value")?) {
                match f? {
                    (1, w) => value.tag = w.string("Summary.Value.tag")?,
                    (2, w) => value.simple_value = Some(w.float("Summary.Value.simple_value")?),
                    _ => {}
                }
            }
            values.push(value);
        }
    }
    Ok(values)
}

fn decode_session_log(buf: &[u8]) -> std::result::Result<SessionLog, String> {
    let mut log =
        SessionLog { status: SessionStatus::Unspecified, checkpoint_path: String::new(), msg: String::new() };
    for field in proto::Fields::new(buf) {
        match field? {
            (1, w) => log.status = SessionStatus::from_code(w.int("SessionLog.status")?),
            (2, w) => log.checkpoint_path = w.string("SessionLog.checkpoint_path")?,
            (3, w) => log.msg = w.string("SessionLog.msg")?,
            _ => {}
        }
    }
    Ok(log)
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// The machine's name for the file name: `/etc/hostname`, or `localhost`.
fn hostname() -> String {
    let name = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    // Keep the file name one safe path component whatever the file holds.
    let name: String =
        name.trim().chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

/// Appends events to a new event file; every call's records reach the OS before it returns.
pub struct EventWriter {
    path: PathBuf,
    file: BufWriter<File>,
}

impl EventWriter {
    /// Starts a new file `events.out.tfevents.<unix seconds>.<hostname>.<pid>.gradplan` in
    /// `dir` (created if missing) and writes its `file_version` record. A second writer of
    /// the same process in the same second gets a `.N` suffix, which sorts after the first,
    /// as TensorBoard reads a directory's files in name order.
    pub fn create(dir: &Path) -> Result<EventWriter> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_owned(), source })?;
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let base = format!("events.out.tfevents.{secs}.{}.{}.gradplan", hostname(), std::process::id());
        let mut n = 0u32;
        let (path, file) = loop {
            let name = if n == 0 { base.clone() } else { format!("{base}.{n:03}") };
            let path = dir.join(name);
            match File::options().write(true).create_new(true).open(&path) {
                Ok(file) => break (path, file),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 999 => n += 1,
                Err(source) => return Err(Error::Io { path, source }),
            }
        };
        let mut writer = EventWriter { path, file: BufWriter::new(file) };
        writer.write(&Event {
            wall_time: now(),
            step: 0,
            payload: Payload::FileVersion(FILE_VERSION.into()),
        })?;
        writer.flush()?;
        Ok(writer)
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One scalar (`simple_value`, stored as f32) under `tag` at `step`.
    pub fn scalar(&mut self, tag: &str, step: i64, value: f64) -> Result<()> {
        self.scalars(step, &[(tag, value)])
    }

    /// Several scalars at one `step`, in one event, then flushed.
    pub fn scalars(&mut self, step: i64, values: &[(&str, f64)]) -> Result<()> {
        if !values.is_empty() {
            let values = values
                .iter()
                .map(|&(tag, v)| Value { tag: tag.to_owned(), simple_value: Some(v as f32) })
                .collect();
            self.write(&Event { wall_time: now(), step, payload: Payload::Summary(values) })?;
        }
        self.flush()
    }

    /// Marks a restart at `step` (a `SessionLog` `START`), so that TensorBoard forgets the
    /// events of earlier files at `step` or later: those a resumed run is about to redo.
    pub fn restart_at(&mut self, step: i64) -> Result<()> {
        let log =
            SessionLog { status: SessionStatus::Start, checkpoint_path: String::new(), msg: String::new() };
        self.write(&Event { wall_time: now(), step, payload: Payload::SessionLog(log) })?;
        self.flush()
    }

    /// Hands the buffered records to the OS.
    pub fn flush(&mut self) -> Result<()> {
        self.file.flush().map_err(|source| Error::Io { path: self.path.clone(), source })
    }

    fn write(&mut self, event: &Event) -> Result<()> {
        let data = event.encode();
        let len = (data.len() as u64).to_le_bytes();
        let mut record = Vec::with_capacity(data.len() + 16);
        record.extend_from_slice(&len);
        record.extend_from_slice(&crc::masked_crc32c(&len).to_le_bytes());
        record.extend_from_slice(&data);
        record.extend_from_slice(&crc::masked_crc32c(&data).to_le_bytes());
        self.file.write_all(&record).map_err(|source| Error::Io { path: self.path.clone(), source })
    }
}

/// Reads every event of the file at `path`, checking both CRCs of every record.
///
/// A last record that the file ends inside of is skipped, not an error: that is what a
/// writer killed mid-record leaves, and TensorBoard's reader treats it the same way (it
/// stops at a short read and retries later). A CRC mismatch is still an error.
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
    let corrupt =
        |offset: usize, what: String| Error::Corrupt { path: path.to_owned(), offset: offset as u64, what };
    let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let mut events = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        if bytes.len() - pos < 12 {
            break; // truncated inside the record header
        }
        let len_bytes = &bytes[pos..pos + 8];
        if u32_at(pos + 8) != crc::masked_crc32c(len_bytes) {
            return Err(corrupt(pos, "CRC mismatch on the record length".into()));
        }
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
        let start = pos + 12;
        // The length's CRC matched, so a record running past the end was cut short.
        let Some(end) = usize::try_from(len)
            .ok()
            .and_then(|n| start.checked_add(n))
            .filter(|&e| e.checked_add(4).is_some_and(|e4| e4 <= bytes.len()))
        else {
            break;
        };
        let data = &bytes[start..end];
        if u32_at(end) != crc::masked_crc32c(data) {
            return Err(corrupt(pos, "CRC mismatch on the record data".into()));
        }
        events.push(Event::decode(data).map_err(|what| corrupt(start, what))?);
        pos = end + 4;
    }
    Ok(events)
}

/// The event files in `dir` (names holding `tfevents`, as TensorBoard picks them), in the
/// name order TensorBoard reads them.
pub fn event_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let io = |source| Error::Io { path: dir.to_owned(), source };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if entry.file_name().to_string_lossy().contains("tfevents") && entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(e: &Event) -> &[Value] {
        match &e.payload {
            Payload::Summary(v) => v,
            p => panic!("not a summary: {p:?}"),
        }
    }

    #[test]
    fn write_then_read_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let before = now();
        let mut w = EventWriter::create(tmp.path()).unwrap();
        w.scalar("train/return", 1000, 123.456).unwrap();
        w.scalars(2000, &[("loss/kl", 3.0), ("loss/total", -0.1), ("big", 1e40), ("nan", f64::NAN)]).unwrap();
        w.scalars(i64::MAX, &[]).unwrap();
        w.restart_at(1001).unwrap();
        w.scalar("train/return", -5, 7.0).unwrap();
        let name = w.path().file_name().unwrap().to_str().unwrap().to_owned();
        assert!(
            name.starts_with("events.out.tfevents.")
                && name.ends_with(&format!(".{}.gradplan", std::process::id()))
        );
        drop(w);

        assert_eq!(event_files(tmp.path()).unwrap(), [tmp.path().join(&name)]);
        let events = read_events(&tmp.path().join(&name)).unwrap();
        assert_eq!(events.len(), 5, "{events:?}");
        assert_eq!(events[0].payload, Payload::FileVersion("brain.Event:2".into()));
        for e in &events {
            assert!(e.wall_time >= before.floor() && e.wall_time <= now() + 1.0, "{e:?}");
        }
        assert_eq!(events[1].step, 1000);
        assert_eq!(
            summary(&events[1]),
            [Value { tag: "train/return".into(), simple_value: Some(123.456f32) }]
        );
        assert_eq!(events[2].step, 2000);
        let values = summary(&events[2]);
        let tags: Vec<&str> = values.iter().map(|v| v.tag.as_str()).collect();
        assert_eq!(tags, ["loss/kl", "loss/total", "big", "nan"]);
        assert_eq!(events[2].scalar("loss/kl"), Some(3.0));
        assert_eq!(events[2].scalar("loss/total"), Some(-0.1f32));
        assert_eq!(events[2].scalar("big"), Some(f32::INFINITY));
        assert!(events[2].scalar("nan").unwrap().is_nan());
        assert_eq!(events[2].scalar("absent"), None);
        assert_eq!(events[3].step, 1001);
        assert_eq!(
            events[3].payload,
            Payload::SessionLog(SessionLog {
                status: SessionStatus::Start,
                checkpoint_path: String::new(),
                msg: String::new()
            })
        );
        assert_eq!((events[4].step, events[4].scalar("train/return")), (-5, Some(7.0)));
    }

    #[test]
    fn writers_in_the_same_second_get_distinct_files_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..3)
            .map(|i| {
                let mut w = EventWriter::create(tmp.path()).unwrap();
                w.scalar("x", i, i as f64).unwrap();
                w.path().to_owned()
            })
            .collect();
        // Same second or not, each writer keeps its own file and name order is creation order.
        assert_eq!(event_files(tmp.path()).unwrap(), paths);
        for (i, p) in paths.iter().enumerate() {
            let events = read_events(p).unwrap();
            assert_eq!(events.len(), 2);
            assert_eq!(events[1].scalar("x"), Some(i as f32));
        }
    }

    #[test]
    fn a_flipped_byte_is_a_crc_error() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(tmp.path()).unwrap();
        w.scalars(5, &[("a", 1.0), ("b", 2.0)]).unwrap();
        let path = w.path().to_owned();
        drop(w);
        let good = std::fs::read(&path).unwrap();
        assert_eq!(read_events(&path).unwrap().len(), 2);

        // Every byte of the second record: header, length CRC, payload or data CRC.
        let second = 12 + u64::from_le_bytes(good[..8].try_into().unwrap()) as usize + 4;
        for at in second..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            let err = read_events(&path).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, Error::Corrupt { offset, .. } if offset == second as u64), "{msg}");
            assert!(msg.contains("CRC mismatch"), "byte {at}: {msg}");
            assert!(msg.contains(&path.display().to_string()), "{msg}");
        }
        // A data byte: the data CRC catches it.
        let mut bad = good.clone();
        let last = bad.len() - 6;
        bad[last] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        assert!(read_events(&path).unwrap_err().to_string().contains("CRC mismatch on the record data"));
    }

    fn record_len(bytes: &[u8], at: usize) -> usize {
        u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize
    }

    #[test]
    fn a_truncated_last_record_is_skipped_as_tensorboard_does() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(tmp.path()).unwrap();
        w.scalars(5, &[("a", 1.0)]).unwrap();
        w.scalars(6, &[("a", 2.0)]).unwrap();
        let path = w.path().to_owned();
        drop(w);
        let good = std::fs::read(&path).unwrap();
        let all = read_events(&path).unwrap();
        // A killed writer leaves the last record cut anywhere: in its header, its data or its
        // data CRC. What precedes it is read; the cut record is not.
        let mut last_start = 0;
        while last_start + 12 + record_len(&good, last_start) + 4 < good.len() {
            last_start += 12 + record_len(&good, last_start) + 4;
        }
        for end in last_start + 1..good.len() {
            std::fs::write(&path, &good[..end]).unwrap();
            let events = read_events(&path).unwrap();
            assert_eq!(events, all[..all.len() - 1], "file cut at byte {end}");
        }
    }
}
