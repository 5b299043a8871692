//! Saving and loading a replay as one safetensors file (layout in the crate docs).

use crate::buffer::{EpisodeState, ObsStore, Replay};
use crate::{Error, Result};
use gradplan_env::{ActionSpec, ObsSpec};
use safetensors::tensor::Metadata;
use safetensors::{Dtype, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const FORMAT: &str = "gradplan-replay";
/// Version 2 adds a CRC-32 per tensor (`crc32.<tensor>` in the metadata); version 1 files,
/// which have none, still load, unverified.
const VERSION: &str = "2";
const READABLE_VERSIONS: [&str; 2] = ["1", "2"];
/// Metadata key prefix of the per-tensor checksums.
const CRC_PREFIX: &str = "crc32.";
/// The safetensors crate's own header limit.
const MAX_HEADER_BYTES: u64 = 100_000_000;
/// f32 tensors are converted through a buffer of this many bytes, not a copy of the tensor.
const READ_BLOCK_BYTES: usize = 1 << 20;

/// One array borrowed from the replay, converted to little-endian bytes only when written.
struct Column<'a> {
    shape: Vec<usize>,
    data: ColumnData<'a>,
}

enum ColumnData<'a> {
    U8(&'a [u8]),
    F32(&'a [f32]),
    Bool(&'a [bool]),
}

impl View for Column<'_> {
    fn dtype(&self) -> Dtype {
        match self.data {
            ColumnData::U8(_) => Dtype::U8,
            ColumnData::F32(_) => Dtype::F32,
            ColumnData::Bool(_) => Dtype::BOOL,
        }
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        // Frames go out without a copy; the f32 and flag arrays are a few bytes a step, and
        // the writer asks for one tensor at a time.
        match self.data {
            ColumnData::U8(v) => Cow::Borrowed(v),
            ColumnData::F32(v) => Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            ColumnData::Bool(v) => Cow::Owned(v.iter().map(|&b| u8::from(b)).collect()),
        }
    }

    fn data_len(&self) -> usize {
        match self.data {
            ColumnData::U8(v) => v.len(),
            ColumnData::F32(v) => 4 * v.len(),
            ColumnData::Bool(v) => v.len(),
        }
    }
}

impl Replay {
    /// Writes the replay to `path` atomically: into a temporary file in the same directory,
    /// synced to disk, then renamed over `path`, so a crash leaves the old file or the new one.
    /// Frames are streamed from the buffer; only the small f32 and flag arrays are converted.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let fail = |detail: String| Error::Save { path: path.to_owned(), detail };
        gradplan_fsio::replace_with(path, |tmp| {
            let file = File::create(tmp)?;
            write_safetensors(&file, self.columns(), self.file_metadata())
        })
        .map_err(|e| fail(e.to_string()))?;
        Ok(())
    }

    /// Reads a replay written by [`Replay::save`], exactly as it was: contents, write
    /// position, counters and the state of the episode being collected. A file that is
    /// truncated, padded, not a replay, or inconsistent is an [`Error::Corrupt`].
    pub fn load(path: impl AsRef<Path>) -> Result<Replay> {
        let mut file = TensorFile::open(path.as_ref())?;
        let meta = MetaMap { map: file.meta.metadata().clone().unwrap_or_default(), path: &file.path };
        if meta.map.is_empty() {
            return Err(file.corrupt("it has no `__metadata__`; it was not written by gradplan-replay"));
        }
        let format = meta.get("format")?;
        if format != FORMAT {
            return Err(file.corrupt(format!("its format is `{format}`, expected `{FORMAT}`")));
        }
        let version = meta.get("version")?;
        if !READABLE_VERSIONS.contains(&version) {
            return Err(file.corrupt(format!(
                "format version {version}; this build reads versions {}",
                READABLE_VERSIONS.join(" and ")
            )));
        }
        if version != "1" {
            file.checksums = Some(file.read_checksums(&meta.map)?);
        }
        let capacity: usize = meta.parse("capacity")?;
        let len: usize = meta.parse("len")?;
        let next: usize = meta.parse("next")?;
        let action_dim: usize = meta.parse("action_dim")?;
        let total_steps: u64 = meta.parse("total_steps")?;
        let total_episodes: u64 = meta.parse("total_episodes")?;
        let shape: Vec<usize> = serde_json::from_str(meta.get("obs_shape")?)
            .map_err(|e| file.corrupt(format!("metadata `obs_shape` is not a list of sizes: {e}")))?;
        let obs_spec = match (meta.get("obs_kind")?, shape.as_slice()) {
            ("pixels", &[height, width, 3]) => ObsSpec::Pixels { height, width },
            ("state", &[dim]) => ObsSpec::State { dim },
            (kind, _) => {
                return Err(
                    file.corrupt(format!("observation kind `{kind}` with shape {shape:?} is not valid"))
                )
            }
        };
        let bit_depth = match meta.get("bit_depth")? {
            "none" => None,
            _ => Some(meta.parse::<u32>("bit_depth")?),
        };
        let episode = match meta.get("episode")? {
            "none" => EpisodeState::None,
            "open" => EpisodeState::Open,
            "ended" => EpisodeState::Ended,
            other => return Err(file.corrupt(format!("metadata `episode` is `{other}`"))),
        };
        let next_ok = if len < capacity { next == len } else { next < capacity };
        if len > capacity
            || !next_ok
            || total_steps < len as u64
            || (episode == EpisodeState::None) != (len == 0)
        {
            return Err(file.corrupt(format!(
                "inconsistent counters: len {len}, capacity {capacity}, next {next}, total steps \
                 {total_steps}, episode {episode:?}"
            )));
        }

        let low = file.f32s("action_low", &[action_dim])?;
        let high = file.f32s("action_high", &[action_dim])?;
        let mut replay = Replay::new(obs_spec, ActionSpec { low, high }, capacity)
            .map_err(|e| file.corrupt(format!("its settings are invalid: {e}")))?;
        if let Some(bits) = bit_depth {
            replay = replay.with_bit_depth(bits).map_err(|e| file.corrupt(e.to_string()))?;
        }
        let mut obs_shape = vec![len];
        obs_shape.extend(obs_spec.shape());
        replay.obs = match obs_spec {
            ObsSpec::Pixels { .. } => ObsStore::Pixels(file.bytes("obs", Dtype::U8, &obs_shape)?),
            ObsSpec::State { .. } => ObsStore::State(file.f32s("obs", &obs_shape)?),
        };
        replay.actions = file.f32s("action", &[len, action_dim])?;
        replay.rewards = file.f32s("reward", &[len])?;
        replay.is_first = file.flags("is_first", len)?;
        replay.is_terminal = file.flags("is_terminal", len)?;
        replay.firsts = replay.is_first.iter().filter(|&&f| f).count();
        if (replay.firsts as u64) > total_episodes {
            return Err(file.corrupt(format!(
                "{} episode starts stored but only {total_episodes} episodes seen",
                replay.firsts
            )));
        }
        replay.next = next;
        replay.total_steps = total_steps;
        replay.total_episodes = total_episodes;
        replay.episode = episode;
        Ok(replay)
    }

    fn columns(&self) -> Vec<(&'static str, Column<'_>)> {
        let len = self.len();
        let a = self.action_spec.dim();
        let mut obs_shape = vec![len];
        obs_shape.extend(self.obs_spec.shape());
        let obs = match &self.obs {
            ObsStore::Pixels(v) => ColumnData::U8(v),
            ObsStore::State(v) => ColumnData::F32(v),
        };
        let column = |shape: Vec<usize>, data| Column { shape, data };
        vec![
            ("obs", column(obs_shape, obs)),
            ("action", column(vec![len, a], ColumnData::F32(&self.actions))),
            ("reward", column(vec![len], ColumnData::F32(&self.rewards))),
            ("is_first", column(vec![len], ColumnData::Bool(&self.is_first))),
            ("is_terminal", column(vec![len], ColumnData::Bool(&self.is_terminal))),
            ("action_low", column(vec![a], ColumnData::F32(&self.action_spec.low))),
            ("action_high", column(vec![a], ColumnData::F32(&self.action_spec.high))),
        ]
    }

    fn file_metadata(&self) -> BTreeMap<String, String> {
        let kind = match self.obs_spec {
            ObsSpec::Pixels { .. } => "pixels",
            ObsSpec::State { .. } => "state",
        };
        let shape = self.obs_spec.shape().iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ");
        let episode = match self.episode {
            EpisodeState::None => "none",
            EpisodeState::Open => "open",
            EpisodeState::Ended => "ended",
        };
        [
            ("format", FORMAT.to_string()),
            ("version", VERSION.to_string()),
            ("capacity", self.capacity.to_string()),
            ("len", self.len().to_string()),
            ("next", self.next.to_string()),
            ("obs_kind", kind.to_string()),
            ("obs_shape", format!("[{shape}]")),
            ("action_dim", self.action_spec.dim().to_string()),
            ("bit_depth", self.bit_depth.map_or("none".to_string(), |b| b.to_string())),
            ("total_steps", self.total_steps.to_string()),
            ("total_episodes", self.total_episodes.to_string()),
            ("episode", episode.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// Writes `columns` as a safetensors file with `metadata` and a CRC-32 of every tensor's
/// data (`crc32.<name>`, 8 hex digits), in safetensors' own layout (larger dtypes first, then
/// by name, data back to back, header padded with spaces to 8 bytes).
///
/// Written here rather than with `safetensors::serialize_to_file` because that takes the
/// metadata as a `HashMap` and writes it in the map's iteration order, which is random per
/// process: two saves of one replay, as in an interrupted and an uninterrupted run, then
/// differ in their header bytes. Here every map is a `BTreeMap`, so the bytes depend only on
/// the contents.
fn write_safetensors(
    file: &File,
    mut columns: Vec<(&'static str, Column<'_>)>,
    mut metadata: BTreeMap<String, String>,
) -> std::io::Result<()> {
    columns.sort_by(|(ln, l), (rn, r)| r.dtype().cmp(&l.dtype()).then(ln.cmp(rn)));
    let mut header: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut offset = 0;
    for (name, column) in &columns {
        metadata.insert(format!("{CRC_PREFIX}{name}"), format!("{:08x}", crc32fast::hash(&column.data())));
        let end = offset + column.data_len();
        let info = serde_json::json!({
            "dtype": column.dtype(),
            "shape": column.shape(),
            "data_offsets": [offset, end],
        });
        header.insert(name.to_string(), info);
        offset = end;
    }
    header.insert("__metadata__".into(), serde_json::to_value(&metadata)?);
    let mut bytes = serde_json::to_vec(&header)?;
    bytes.resize(bytes.len().next_multiple_of(8), b' ');
    let mut out = BufWriter::new(file);
    out.write_all(&(bytes.len() as u64).to_le_bytes())?;
    out.write_all(&bytes)?;
    for (_, column) in &columns {
        out.write_all(&column.data())?;
    }
    out.flush()
}

/// The string map of a file's `__metadata__`.
struct MetaMap<'a> {
    map: HashMap<String, String>,
    path: &'a Path,
}

impl MetaMap<'_> {
    fn get(&self, key: &str) -> Result<&str> {
        self.map.get(key).map(String::as_str).ok_or_else(|| Error::Corrupt {
            path: self.path.to_owned(),
            reason: format!("metadata `{key}` is missing"),
        })
    }

    fn parse<T: std::str::FromStr>(&self, key: &str) -> Result<T> {
        let value = self.get(key)?;
        value.parse().map_err(|_| Error::Corrupt {
            path: self.path.to_owned(),
            reason: format!("metadata `{key}` is `{value}`, not a number"),
        })
    }
}

/// A safetensors file whose header has been read and checked against the file's size;
/// tensors are then read one at a time straight into their arrays.
struct TensorFile {
    path: PathBuf,
    file: File,
    meta: Metadata,
    data_start: u64,
    /// The CRC-32 of each tensor's data, from the metadata; `None` in version 1 files.
    checksums: Option<HashMap<String, u32>>,
}

impl TensorFile {
    fn open(path: &Path) -> Result<Self> {
        let read_err = |source| Error::Read { path: path.to_owned(), source };
        let corrupt = |reason: String| Error::Corrupt { path: path.to_owned(), reason };
        let mut file = File::open(path).map_err(read_err)?;
        let file_len = file.metadata().map_err(read_err)?.len();
        let mut n = [0u8; 8];
        if file_len < 8 {
            return Err(corrupt(format!("{file_len} bytes is too short for a safetensors header")));
        }
        file.read_exact(&mut n).map_err(read_err)?;
        let n = u64::from_le_bytes(n);
        if n > MAX_HEADER_BYTES || n > file_len - 8 {
            return Err(corrupt(format!("its header length {n} does not fit in its {file_len} bytes")));
        }
        let mut header = vec![0u8; n as usize];
        file.read_exact(&mut header).map_err(read_err)?;
        // Deserialising `Metadata` checks that every tensor's byte range matches its dtype
        // and shape and that the ranges tile the data section.
        let meta: Metadata = serde_json::from_slice(&header)
            .map_err(|e| corrupt(format!("its safetensors header is unreadable: {e}")))?;
        let data_start = 8 + n;
        let expected = data_start + meta.data_len() as u64;
        if expected != file_len {
            return Err(corrupt(format!(
                "its header describes {expected} bytes but the file has {file_len} (truncated or padded)"
            )));
        }
        Ok(TensorFile { path: path.to_owned(), file, meta, data_start, checksums: None })
    }

    /// The `crc32.<tensor>` entries of `map`, one for every tensor of the file.
    fn read_checksums(&self, map: &HashMap<String, String>) -> Result<HashMap<String, u32>> {
        let mut out = HashMap::new();
        for name in self.meta.tensors().into_keys() {
            let key = format!("{CRC_PREFIX}{name}");
            let value = map.get(&key).ok_or_else(|| self.corrupt(format!("metadata `{key}` is missing")))?;
            let crc = u32::from_str_radix(value, 16)
                .map_err(|_| self.corrupt(format!("metadata `{key}` is `{value}`, not a CRC-32")))?;
            out.insert(name, crc);
        }
        Ok(out)
    }

    /// Checks the CRC-32 of tensor `name`'s data, as read, against the stored one.
    fn verify(&self, name: &str, crc: u32) -> Result<()> {
        match self.checksums.as_ref().and_then(|c| c.get(name)) {
            Some(&want) if want != crc => Err(self.corrupt(format!(
                "the checksum of tensor `{name}` does not match its data (stored {want:08x}, computed \
                 {crc:08x}): the file was damaged after it was written"
            ))),
            _ => Ok(()),
        }
    }

    fn corrupt(&self, reason: impl Into<String>) -> Error {
        Error::Corrupt { path: self.path.clone(), reason: reason.into() }
    }

    /// Seeks to tensor `name` after checking its dtype and shape; returns its byte length.
    fn seek(&mut self, name: &str, dtype: Dtype, shape: &[usize]) -> Result<usize> {
        let info = self.meta.info(name).ok_or_else(|| self.corrupt(format!("tensor `{name}` is missing")))?;
        if info.dtype != dtype || info.shape != shape {
            return Err(self.corrupt(format!(
                "tensor `{name}` is {} {:?}, expected {dtype} {shape:?}",
                info.dtype, info.shape
            )));
        }
        let (start, end) = info.data_offsets;
        let at = self.data_start + start as u64;
        self.file
            .seek(SeekFrom::Start(at))
            .map_err(|source| Error::Read { path: self.path.clone(), source })?;
        Ok(end - start)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.file.read_exact(buf).map_err(|source| Error::Read { path: self.path.clone(), source })
    }

    fn bytes(&mut self, name: &str, dtype: Dtype, shape: &[usize]) -> Result<Vec<u8>> {
        let n = self.seek(name, dtype, shape)?;
        let mut out = vec![0u8; n];
        self.read_exact(&mut out)?;
        self.verify(name, crc32fast::hash(&out))?;
        Ok(out)
    }

    fn flags(&mut self, name: &str, len: usize) -> Result<Vec<bool>> {
        let raw = self.bytes(name, Dtype::BOOL, &[len])?;
        raw.iter()
            .enumerate()
            .map(|(i, &b)| match b {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(self.corrupt(format!("tensor `{name}` holds {b} at {i}; booleans are 0 or 1"))),
            })
            .collect()
    }

    fn f32s(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let mut left = self.seek(name, Dtype::F32, shape)?;
        let mut out = Vec::with_capacity(left / 4);
        let mut buf = vec![0u8; left.min(READ_BLOCK_BYTES)];
        let mut crc = crc32fast::Hasher::new();
        while left > 0 {
            let k = left.min(buf.len());
            self.read_exact(&mut buf[..k])?;
            crc.update(&buf[..k]);
            out.extend(buf[..k].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
            left -= k;
        }
        self.verify(name, crc.finalize())?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::tests::{fill, state_replay};
    use gradplan_env::{Frame, Obs, Step};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn pixel_replay() -> Replay {
        let spec = ObsSpec::Pixels { height: 4, width: 5 };
        let action = ActionSpec { low: vec![-1.0, -2.0], high: vec![1.0, 0.5] };
        let mut r = Replay::new(spec, action, 64).unwrap().with_bit_depth(5).unwrap();
        let frame = |g: u32| {
            let data = (0..60).map(|i| (g * 31 + i * 7) as u8).collect();
            Obs::Pixels(Frame::new(4, 5, data).unwrap())
        };
        let mut g = 0;
        for e in 0..9u32 {
            r.begin_episode(&frame(g)).unwrap();
            g += 1;
            for i in 1..=(5 + e * 3) {
                let last = i == 5 + e * 3 && e < 8; // the last episode stays open
                let step = Step {
                    obs: frame(g),
                    reward: g as f64 * 0.25,
                    terminated: last && e.is_multiple_of(2),
                    truncated: last,
                };
                r.push(&[(g as f32).sin(), (g as f32).cos() - 1.0], &step).unwrap();
                g += 1;
            }
        }
        r
    }

    #[test]
    fn round_trip_restores_everything_and_sampling() {
        let dir = tempfile::tempdir().unwrap();
        let mut original = pixel_replay();
        assert_eq!(original.len(), 64, "the test wants a wrapped ring");
        assert_ne!(original.next, 0);
        assert_eq!(original.episode, EpisodeState::Open);
        let path = dir.path().join("replay.safetensors");
        original.save(&path).unwrap();
        let mut loaded = Replay::load(&path).unwrap();
        assert_eq!(loaded, original);
        assert_eq!(loaded.episodes(), original.episodes());
        assert_eq!(loaded.total_steps_seen(), original.total_steps_seen());
        assert_eq!(loaded.total_episodes_seen(), original.total_episodes_seen());
        assert_eq!(loaded.bit_depth(), Some(5));
        assert_eq!(loaded.action_spec(), original.action_spec());
        let mut ra = ChaCha8Rng::seed_from_u64(11);
        let mut rb = ChaCha8Rng::seed_from_u64(11);
        for _ in 0..5 {
            assert_eq!(original.sample(6, 10, &mut ra).unwrap(), loaded.sample(6, 10, &mut rb).unwrap());
        }
        // Collection carries on where it stopped: same slot, same open episode.
        let more = Step {
            obs: Obs::Pixels(Frame::new(4, 5, vec![200; 60]).unwrap()),
            reward: 1.0,
            terminated: true,
            truncated: false,
        };
        original.push(&[0.1, 0.2], &more).unwrap();
        loaded.push(&[0.1, 0.2], &more).unwrap();
        assert_eq!(loaded, original);

        // State replays, an empty replay and one between episodes round-trip too; saving over
        // an existing file replaces it and leaves no temporary files.
        let mut state = state_replay(1000);
        fill(&mut state, &[3, 9, 4]);
        for r in [state, state_replay(7)] {
            r.save(&path).unwrap();
            assert_eq!(Replay::load(&path).unwrap(), r);
        }
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("replay.safetensors")]);
    }

    #[test]
    fn file_is_plain_safetensors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.safetensors");
        let r = pixel_replay();
        r.save(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let obs = st.tensor("obs").unwrap();
        assert_eq!(obs.dtype(), Dtype::U8);
        assert_eq!(obs.shape(), &[64, 4, 5, 3]);
        let ObsStore::Pixels(frames) = &r.obs else { panic!("pixels") };
        assert_eq!(obs.data(), frames.as_slice(), "rows are ring slots in storage order");
        assert_eq!(st.tensor("is_first").unwrap().dtype(), Dtype::BOOL);
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let kv = meta.metadata().as_ref().unwrap();
        assert_eq!(kv["format"], "gradplan-replay");
        assert_eq!(kv["obs_shape"], "[4, 5, 3]");
        assert_eq!(kv["next"], r.next.to_string());
    }

    #[test]
    fn a_flipped_data_byte_is_a_checksum_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.safetensors");
        pixel_replay().save(&path).unwrap();
        let good = std::fs::read(&path).unwrap();
        let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
        let meta: Metadata = serde_json::from_slice(&good[8..8 + n]).unwrap();
        // One byte inside each tensor's data: every one is caught and named.
        for name in ["obs", "action", "reward", "action_low", "action_high"] {
            let (start, end) = meta.info(name).unwrap().data_offsets;
            let mut bad = good.clone();
            bad[8 + n + (start + end) / 2] ^= 0x01;
            let p = dir.path().join("bad.safetensors");
            std::fs::write(&p, &bad).unwrap();
            let err = Replay::load(&p).unwrap_err().to_string();
            assert!(err.contains("checksum") && err.contains(&format!("`{name}`")), "{name}: {err}");
        }
        // A version 1 file (written before checksums) still loads, unverified.
        let header = String::from_utf8(good[8..8 + n].to_vec()).unwrap();
        assert!(header.contains("\"version\":\"2\""), "{header}");
        let mut v1 = good.clone();
        v1[8..8 + n].copy_from_slice(header.replace("\"version\":\"2\"", "\"version\":\"1\"").as_bytes());
        let p = dir.path().join("v1.safetensors");
        std::fs::write(&p, &v1).unwrap();
        assert_eq!(Replay::load(&p).unwrap(), pixel_replay());
    }

    #[test]
    fn saving_the_same_replay_twice_gives_the_same_bytes() {
        // The header's metadata map must not follow a per-process hash order: an exact
        // resume then leaves a byte-identical replay.safetensors.
        let dir = tempfile::tempdir().unwrap();
        let r = pixel_replay();
        let bytes: Vec<Vec<u8>> = (0..4)
            .map(|i| {
                let path = dir.path().join(format!("r{i}.safetensors"));
                r.save(&path).unwrap();
                std::fs::read(&path).unwrap()
            })
            .collect();
        assert!(bytes.windows(2).all(|w| w[0] == w[1]), "the bytes differ between saves");
    }

    #[test]
    fn damaged_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.safetensors");
        let mut r = state_replay(100);
        fill(&mut r, &[4, 6]);
        r.save(&path).unwrap();
        let good = std::fs::read(&path).unwrap();
        let load_with = |bytes: &[u8]| {
            let p = dir.path().join("bad.safetensors");
            std::fs::write(&p, bytes).unwrap();
            Replay::load(&p).unwrap_err().to_string()
        };

        let err = load_with(&good[..good.len() - 10]);
        assert!(err.contains("truncated or padded"), "{err}");
        let err = load_with(&good[..5]);
        assert!(err.contains("too short"), "{err}");
        let err = load_with(b"\xff\xff\xff\xff\x00\x00\x00\x00garbage");
        assert!(err.contains("header length"), "{err}");
        let mut garbled = good.clone();
        garbled[9] = b'#';
        let err = load_with(&garbled);
        assert!(err.contains("header is unreadable"), "{err}");
        assert!(err.contains("not a valid replay file"), "{err}");

        // A flag byte that is not 0 or 1.
        let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
        let meta: Metadata = serde_json::from_slice(&good[8..8 + n]).unwrap();
        let mut bad_flag = good.clone();
        let (start, end) = meta.info("is_first").unwrap().data_offsets;
        bad_flag[8 + n + start] = 7;
        let err = load_with(&bad_flag);
        assert!(err.contains("checksum of tensor `is_first`"), "{err}");
        // … and with its checksum made to match, the value itself is refused.
        let kv = meta.metadata().as_ref().unwrap();
        let (old, new) = (
            &kv["crc32.is_first"],
            format!("{:08x}", crc32fast::hash(&bad_flag[8 + n + start..8 + n + end])),
        );
        let header = String::from_utf8(bad_flag[8..8 + n].to_vec()).unwrap().replace(old.as_str(), &new);
        bad_flag[8..8 + n].copy_from_slice(header.as_bytes());
        let err = load_with(&bad_flag);
        assert!(err.contains("booleans are 0 or 1"), "{err}");

        // A valid safetensors file that is not a replay.
        let other = safetensors::serialize(
            [("w", Column { shape: vec![2], data: ColumnData::F32(&[1.0, 2.0]) })],
            Some(HashMap::from([("format".to_string(), "pt".to_string())])),
        )
        .unwrap();
        let err = load_with(&other);
        assert!(err.contains("format is `pt`"), "{err}");

        let err = Replay::load(dir.path().join("missing.safetensors")).unwrap_err();
        assert!(matches!(err, Error::Read { .. }), "{err}");
        let err = r.save(dir.path().join("no/such/dir/r.safetensors")).unwrap_err();
        assert!(matches!(err, Error::Save { .. }), "{err}");
    }
}
