//! MuJoCo 3.17.0 from Rust: the few C functions and struct fields the native dm_control
//! tasks need, and a safe wrapper around them.
//!
//! The library is the `libmujoco.so.3.17.0` that the pinned `mujoco` wheel ships (found by
//! `build.rs`; `GRADPLAN_MUJOCO_LIB` names another directory). The struct layouts come from
//! bindgen output generated once from that wheel's headers and committed
//! (`src/bindings.rs`), so a build needs no libclang; [`Model::from_xml`] refuses to run
//! against a library of another version, whose layouts could differ.
//!
//! dm_control drives MuJoCo through a fixed sequence of calls (reset, forward with
//! actuation disabled, `mj_step` then `mj_step1` for its "legacy step"); [`Physics`] exposes
//! those calls one by one so that the tasks in `gradplan-env` can repeat that sequence
//! exactly, which is what makes their states bit-identical to dm_control's.
//!
//! [`Renderer`] draws frames headless through EGL with MuJoCo's own OpenGL renderer,
//! repeating dm_control's `physics.render` calls, so frames match dm_control's too.
//!
//! Load errors come back as [`Error`]s (MuJoCo writes them into a buffer). MuJoCo's fatal
//! errors (`mju_error`, e.g. an allocation failure inside a step) still go to its default
//! handler, which prints the message and exits the process: a handler cannot unwind through
//! C frames into Rust, and dm_control's Python handler has no Rust equivalent.

#[allow(non_upper_case_globals, non_camel_case_types, non_snake_case, dead_code, unused_imports, clippy::all)]
mod bindings;
mod render;

pub use render::{CameraId, Image, Renderer};

use std::ffi::{c_char, c_int, CStr, CString};
use std::ptr::NonNull;
use std::sync::Once;

/// The MuJoCo version the committed bindings describe, as `mj_version()` reports it.
pub const VERSION: i32 = bindings::mjVERSION_HEADER as i32;

/// Number of MuJoCo's warning kinds (`mjNWARNING`).
const NWARNING: usize = bindings::mjtWarning_mjNWARNING as usize;

/// MuJoCo's warning names, in `mjtWarning` order, for error messages.
const WARNING_NAMES: [&str; NWARNING] =
    ["inertia", "contact_full", "constraint_full", "bad_qpos", "bad_qvel", "bad_qacc", "bad_ctrl"];

/// Everything that can go wrong while loading or stepping a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "libmujoco reports version {found} but gradplan's bindings are for {expected}; point \
         GRADPLAN_MUJOCO_LIB at the libmujoco.so.3.17.0 of the pinned mujoco 3.17.0 wheel"
    )]
    Version { found: i32, expected: i32 },
    #[error("MuJoCo could not load the model: {0}")]
    Load(String),
    #[error("`{0}` contains a NUL byte, which MuJoCo names cannot hold")]
    Nul(String),
    #[error("the model has no {kind} named `{name}`")]
    UnknownName { kind: &'static str, name: String },
    #[error("MuJoCo could not allocate the simulation data for this model")]
    NoData,
    #[error("physics state is invalid; MuJoCo warning(s): {0}")]
    InvalidState(String),
    #[error(
        "MuJoCo could not render headless with EGL ({detail}). Install the EGL and Mesa libraries \
         with `apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri libgles2`"
    )]
    Egl { detail: String },
    #[error("cannot render: {0}")]
    Render(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// `mj_version()` of the linked library: 3017000 for 3.17.0.
pub fn version() -> i32 {
    // SAFETY: a pure function of the library.
    unsafe { bindings::mj_version() }
}

/// `mj_versionString()` of the linked library, e.g. `3.17.0`.
pub fn version_string() -> String {
    // SAFETY: returns a pointer to a static NUL-terminated string.
    unsafe { CStr::from_ptr(bindings::mj_versionString()) }.to_string_lossy().into_owned()
}

/// Drops MuJoCo's warning messages.
extern "C" fn ignore_warning(_message: *const c_char) {}

static QUIET_WARNINGS: Once = Once::new();

/// Without a handler MuJoCo prints every warning to stdout and appends it to
/// `MUJOCO_LOG.TXT` in the working directory; dm_control 1.0.50's models raise deprecation
/// warnings on every load (`settotalmass`), which the dm_control backend silences too. The
/// warnings that matter during a run (bad qacc, full contact buffers) are still seen: they
/// also increment the counters [`Physics::warnings`] reads. A handler someone else already
/// installed (the Python `mujoco` module's, in a process that also runs dm_control) is kept.
fn quiet_warnings() {
    QUIET_WARNINGS.call_once(|| {
        // SAFETY: written once, before this process's first model load; MuJoCo only reads
        // the pointer when it warns.
        unsafe {
            let current = bindings::mju_user_warning;
            if current.is_none() {
                bindings::mju_user_warning = Some(ignore_warning);
            }
        }
    });
}

/// A file the model's XML includes, given by the name the XML uses for it.
#[derive(Debug, Clone)]
pub struct Asset {
    /// The path as written in the XML's `file=` attribute, e.g. `./common/skybox.xml`.
    pub name: String,
    pub contents: Vec<u8>,
}

/// Kinds of named model element that [`Model::id`] looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjKind {
    Body,
    Joint,
    Geom,
    Site,
    Actuator,
    Sensor,
}

impl ObjKind {
    fn raw(self) -> c_int {
        (match self {
            ObjKind::Body => bindings::mjtObj_mjOBJ_BODY,
            ObjKind::Joint => bindings::mjtObj_mjOBJ_JOINT,
            ObjKind::Geom => bindings::mjtObj_mjOBJ_GEOM,
            ObjKind::Site => bindings::mjtObj_mjOBJ_SITE,
            ObjKind::Actuator => bindings::mjtObj_mjOBJ_ACTUATOR,
            ObjKind::Sensor => bindings::mjtObj_mjOBJ_SENSOR,
        }) as c_int
    }

    fn label(self) -> &'static str {
        match self {
            ObjKind::Body => "body",
            ObjKind::Joint => "joint",
            ObjKind::Geom => "geom",
            ObjKind::Site => "site",
            ObjKind::Actuator => "actuator",
            ObjKind::Sensor => "sensor",
        }
    }
}

/// A MuJoCo virtual file system holding in-memory files; deleted on drop.
struct Vfs {
    raw: Box<bindings::mjVFS>,
}

impl Vfs {
    fn new() -> Self {
        let mut raw = Box::new(bindings::mjVFS { impl_: std::ptr::null_mut() });
        // SAFETY: `raw` is a valid, exclusively owned mjVFS.
        unsafe { bindings::mj_defaultVFS(&mut *raw) };
        Vfs { raw }
    }

    fn add(&mut self, name: &str, contents: &[u8]) -> Result<()> {
        let c_name = CString::new(name).map_err(|_| Error::Nul(name.to_owned()))?;
        let len = c_int::try_from(contents.len())
            .map_err(|_| Error::Load(format!("{name} is too large ({} bytes)", contents.len())))?;
        // SAFETY: MuJoCo copies the buffer; both pointers are valid for the call.
        let status = unsafe {
            bindings::mj_addBufferVFS(&mut *self.raw, c_name.as_ptr(), contents.as_ptr().cast(), len)
        };
        match status {
            0 => Ok(()),
            2 => Err(Error::Load(format!("the file {name} was given twice"))),
            code => Err(Error::Load(format!("could not add {name} to MuJoCo's file system (code {code})"))),
        }
    }
}

impl Drop for Vfs {
    fn drop(&mut self) {
        // SAFETY: initialised by mj_defaultVFS and not used after this.
        unsafe { bindings::mj_deleteVFS(&mut *self.raw) };
    }
}

/// A compiled MuJoCo model (`mjModel`).
pub struct Model {
    raw: NonNull<bindings::mjModel>,
    /// Unique per loaded model for the life of the process: a renderer checks it, since a
    /// freed model's address can be reused by the next one.
    id: u64,
}

/// Source of [`Model`] ids.
static NEXT_MODEL_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

// SAFETY: an mjModel is plain memory owned by this value; MuJoCo keeps no thread-local
// references to it, so it may move between threads.
unsafe impl Send for Model {}

/// Name under which the main XML is put into the virtual file system; includes are resolved
/// relative to its (empty) directory, as for dm_control's `from_xml_string`.
const MAIN_FILE: &str = "gradplan_model.xml";

/// The settable parameters of a [`Physics`]'s model ([`Physics::model_params`]).
pub struct ModelParams<'a> {
    model: &'a mut Model,
}

impl ModelParams<'_> {
    pub fn geom_size(&self, geom: usize) -> [f64; 3] {
        self.model.geom_size(geom)
    }

    pub fn set_geom_size(&mut self, geom: usize, size: [f64; 3]) {
        self.model.set_geom_size(geom, size)
    }

    pub fn geom_pos(&self, geom: usize) -> [f64; 3] {
        self.model.geom_pos(geom)
    }

    pub fn set_geom_pos(&mut self, geom: usize, pos: [f64; 3]) {
        self.model.set_geom_pos(geom, pos)
    }

    pub fn set_site_alpha(&mut self, site: usize, alpha: f32) {
        self.model.set_site_alpha(site, alpha)
    }

    pub fn set_dof_damping(&mut self, dof: usize, damping: f64) {
        self.model.set_dof_damping(dof, damping)
    }
}

impl Model {
    /// This model's id, unique in the process.
    pub(crate) fn instance_id(&self) -> u64 {
        self.id
    }

    /// Compiles a model from its XML text, with the files it includes supplied in memory
    /// (dm_control's `Physics.from_xml_string(xml, assets)`).
    pub fn from_xml(xml: &str, assets: &[Asset]) -> Result<Model> {
        if version() != VERSION {
            return Err(Error::Version { found: version(), expected: VERSION });
        }
        quiet_warnings();
        let mut vfs = Vfs::new();
        vfs.add(MAIN_FILE, xml.as_bytes())?;
        for asset in assets {
            vfs.add(&asset.name, &asset.contents)?;
        }
        let name = CString::new(MAIN_FILE).map_err(|_| Error::Nul(MAIN_FILE.into()))?;
        let mut message = vec![0 as c_char; 1000];
        // SAFETY: all pointers are valid for the call; the error buffer's size is passed.
        let raw = unsafe {
            bindings::mj_loadXML(name.as_ptr(), &*vfs.raw, message.as_mut_ptr(), message.len() as c_int)
        };
        match NonNull::new(raw) {
            Some(raw) => {
                Ok(Model { raw, id: NEXT_MODEL_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed) })
            }
            None => {
                // SAFETY: MuJoCo NUL-terminates the message within the buffer.
                let text = unsafe { CStr::from_ptr(message.as_ptr()) }.to_string_lossy().trim().to_owned();
                Err(Error::Load(if text.is_empty() { "no message".into() } else { text }))
            }
        }
    }

    fn raw(&self) -> &bindings::mjModel {
        // SAFETY: valid for the lifetime of `self`.
        unsafe { self.raw.as_ref() }
    }

    /// The offscreen framebuffer's `(width, height)` (`<global offwidth offheight>`), the
    /// largest frame MuJoCo renders.
    pub fn offscreen_size(&self) -> (usize, usize) {
        let global = &self.raw().vis.global;
        (global.offwidth.max(0) as usize, global.offheight.max(0) as usize)
    }

    /// Number of cameras the model defines (`ncam`).
    pub fn ncam(&self) -> usize {
        self.raw().ncam as usize
    }

    /// Number of generalised coordinates (`nq`).
    pub fn nq(&self) -> usize {
        self.raw().nq as usize
    }

    /// Number of degrees of freedom (`nv`).
    pub fn nv(&self) -> usize {
        self.raw().nv as usize
    }

    /// Number of actuators, the action dimension of a dm_control task (`nu`).
    pub fn nu(&self) -> usize {
        self.raw().nu as usize
    }

    /// Number of bodies, the world body included (`nbody`).
    pub fn nbody(&self) -> usize {
        self.raw().nbody as usize
    }

    /// Simulation time step in seconds (`opt.timestep`).
    pub fn timestep(&self) -> f64 {
        self.raw().opt.timestep
    }

    /// Whether the model integrates with RK4, which changes dm_control's step sequence.
    pub fn is_rk4(&self) -> bool {
        self.raw().opt.integrator == bindings::mjtIntegrator_mjINT_RK4 as c_int
    }

    /// The id of the element of `kind` named `name` (`mj_name2id`).
    pub fn id(&self, kind: ObjKind, name: &str) -> Result<usize> {
        let c_name = CString::new(name).map_err(|_| Error::Nul(name.to_owned()))?;
        // SAFETY: valid model and NUL-terminated name.
        let id = unsafe { bindings::mj_name2id(self.raw.as_ptr(), kind.raw(), c_name.as_ptr()) };
        usize::try_from(id).map_err(|_| Error::UnknownName { kind: kind.label(), name: name.to_owned() })
    }

    /// Index in `qpos` of a joint's first coordinate (`jnt_qposadr`).
    ///
    /// # Panics
    /// If `joint` is not a joint id of this model.
    pub fn joint_qpos_adr(&self, joint: usize) -> usize {
        assert!(joint < self.raw().njnt as usize, "joint id {joint} out of range");
        // SAFETY: jnt_qposadr has njnt entries.
        unsafe { *self.raw().jnt_qposadr.add(joint) as usize }
    }

    /// Index in `qvel` of a joint's first degree of freedom (`jnt_dofadr`).
    ///
    /// # Panics
    /// If `joint` is not a joint id of this model.
    pub fn joint_dof_adr(&self, joint: usize) -> usize {
        assert!(joint < self.raw().njnt as usize, "joint id {joint} out of range");
        // SAFETY: jnt_dofadr has njnt entries.
        unsafe { *self.raw().jnt_dofadr.add(joint) as usize }
    }

    /// Number of joints (`njnt`).
    pub fn njnt(&self) -> usize {
        self.raw().njnt as usize
    }

    /// A joint's kind (`jnt_type`).
    pub fn joint_kind(&self, joint: usize) -> JointKind {
        // SAFETY: jnt_type has njnt entries.
        let raw = unsafe { row(self.raw().jnt_type, self.njnt(), 1, joint) }[0];
        match raw as u32 {
            bindings::mjtJoint_mjJNT_FREE => JointKind::Free,
            bindings::mjtJoint_mjJNT_BALL => JointKind::Ball,
            bindings::mjtJoint_mjJNT_SLIDE => JointKind::Slide,
            _ => JointKind::Hinge,
        }
    }

    /// A joint's range, `None` where it is not limited (`jnt_limited`, `jnt_range`).
    pub fn joint_range(&self, joint: usize) -> Option<[f64; 2]> {
        // SAFETY: jnt_limited has njnt entries, jnt_range njnt × 2.
        let limited = unsafe { row(self.raw().jnt_limited, self.njnt(), 1, joint) }[0];
        let range = unsafe { row(self.raw().jnt_range, self.njnt(), 2, joint) };
        limited.then(|| [range[0], range[1]])
    }

    /// A geom's size parameters (`geom_size`).
    pub fn geom_size(&self, geom: usize) -> [f64; 3] {
        // SAFETY: geom_size has ngeom × 3 entries.
        to3(unsafe { row(self.raw().geom_size, self.raw().ngeom as usize, 3, geom) })
    }

    pub fn set_geom_size(&mut self, geom: usize, size: [f64; 3]) {
        let n = self.raw().ngeom as usize;
        // SAFETY: as geom_size; the model is borrowed exclusively.
        unsafe { row_mut(self.raw().geom_size, n, 3, geom) }.copy_from_slice(&size);
    }

    /// A geom's position in its body's frame (`geom_pos`).
    pub fn geom_pos(&self, geom: usize) -> [f64; 3] {
        // SAFETY: geom_pos has ngeom × 3 entries.
        to3(unsafe { row(self.raw().geom_pos, self.raw().ngeom as usize, 3, geom) })
    }

    pub fn set_geom_pos(&mut self, geom: usize, pos: [f64; 3]) {
        let n = self.raw().ngeom as usize;
        // SAFETY: as geom_pos; the model is borrowed exclusively.
        unsafe { row_mut(self.raw().geom_pos, n, 3, geom) }.copy_from_slice(&pos);
    }

    /// A site's size parameters (`site_size`).
    pub fn site_size(&self, site: usize) -> [f64; 3] {
        // SAFETY: site_size has nsite × 3 entries.
        to3(unsafe { row(self.raw().site_size, self.raw().nsite as usize, 3, site) })
    }

    /// Sets a site's opacity (`site_rgba[site, 3]`); dm_control tasks hide sites this way,
    /// which changes the rendered frames only.
    pub fn set_site_alpha(&mut self, site: usize, alpha: f32) {
        let n = self.raw().nsite as usize;
        // SAFETY: site_rgba has nsite × 4 entries; the model is borrowed exclusively.
        let rgba = unsafe { row_mut(self.raw().site_rgba, n, 4, site) };
        rgba[3] = alpha;
    }

    /// Where a sensor's values start in `sensordata`, and how many there are.
    pub fn sensor_span(&self, sensor: usize) -> std::ops::Range<usize> {
        let n = self.raw().nsensor as usize;
        // SAFETY: sensor_adr and sensor_dim have nsensor entries.
        let adr = unsafe { row(self.raw().sensor_adr, n, 1, sensor) }[0] as usize;
        let dim = unsafe { row(self.raw().sensor_dim, n, 1, sensor) }[0] as usize;
        adr..adr + dim
    }

    /// Sets a degree of freedom's damping (`dof_damping`).
    pub fn set_dof_damping(&mut self, dof: usize, damping: f64) {
        let n = self.nv();
        // SAFETY: dof_damping has nv entries; the model is borrowed exclusively.
        let slot = unsafe { row_mut(self.raw().dof_damping, n, 1, dof) };
        slot[0] = damping;
    }

    /// Control bounds of each actuator, `None` where the control is not limited (dm_control's
    /// action spec: ±inf there).
    pub fn ctrl_ranges(&self) -> Vec<Option<CtrlRange>> {
        let m = self.raw();
        (0..self.nu())
            .map(|i| {
                // SAFETY: actuator_ctrllimited has nu entries, actuator_ctrlrange nu × 2.
                let limited = unsafe { *m.actuator_ctrllimited.add(i) };
                limited.then(|| unsafe {
                    CtrlRange {
                        low: *m.actuator_ctrlrange.add(2 * i),
                        high: *m.actuator_ctrlrange.add(2 * i + 1),
                    }
                })
            })
            .collect()
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: owned, and no Data outlives it (Physics drops data first).
        unsafe { bindings::mj_deleteModel(self.raw.as_ptr()) };
    }
}

/// Row `index` of a `rows × width` array of MuJoCo's.
///
/// # Safety
/// `ptr` must point to at least `rows × width` initialised values that outlive the result.
///
/// # Panics
/// If `index >= rows`: ids come from task code, so an out-of-range one is a programming error.
unsafe fn row<'a, T>(ptr: *const T, rows: usize, width: usize, index: usize) -> &'a [T] {
    assert!(index < rows, "index {index} out of range (0..{rows})");
    std::slice::from_raw_parts(ptr.add(index * width), width)
}

/// [`row`], mutable.
///
/// # Safety
/// As [`row`], and no other reference to that memory may be alive.
unsafe fn row_mut<'a, T>(ptr: *mut T, rows: usize, width: usize, index: usize) -> &'a mut [T] {
    assert!(index < rows, "index {index} out of range (0..{rows})");
    std::slice::from_raw_parts_mut(ptr.add(index * width), width)
}

fn to3(v: &[f64]) -> [f64; 3] {
    [v[0], v[1], v[2]]
}

/// What a joint is (`mjtJoint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JointKind {
    /// Six degrees of freedom: position and a quaternion.
    Free,
    /// Three rotational degrees of freedom, as a quaternion.
    Ball,
    Slide,
    Hinge,
}

/// One actuator's control bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CtrlRange {
    pub low: f64,
    pub high: f64,
}

/// How many times each MuJoCo warning has fired since the last reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarningCounts {
    counts: [c_int; NWARNING],
}

impl WarningCounts {
    /// Names of the warnings that fired more often in `self` than in `before`.
    pub fn new_since(&self, before: &WarningCounts) -> Vec<&'static str> {
        (0..NWARNING).filter(|&i| self.counts[i] > before.counts[i]).map(|i| WARNING_NAMES[i]).collect()
    }
}

/// A model and its simulation state (`mjModel` + `mjData`), dm_control's `Physics`.
pub struct Physics {
    // Declared before `model` so that it is dropped first.
    data: NonNull<bindings::mjData>,
    model: Model,
}

// SAFETY: as for Model; the mjData is owned and used only through &mut self.
unsafe impl Send for Physics {}

impl Physics {
    /// Allocates the simulation state of `model` (`mj_makeData`).
    pub fn new(model: Model) -> Result<Physics> {
        // SAFETY: valid model.
        let data = NonNull::new(unsafe { bindings::mj_makeData(model.raw.as_ptr()) }).ok_or(Error::NoData)?;
        Ok(Physics { data, model })
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The model's parameters, to change between steps as dm_control tasks do (a target's
    /// size or position, a damping). A handle rather than `&mut Model`, so the model cannot
    /// be replaced under a data sized for it.
    pub fn model_params(&mut self) -> ModelParams<'_> {
        ModelParams { model: &mut self.model }
    }

    fn m(&self) -> *const bindings::mjModel {
        self.model.raw.as_ptr()
    }

    fn d(&self) -> &bindings::mjData {
        // SAFETY: valid for the lifetime of `self`.
        unsafe { self.data.as_ref() }
    }

    /// `mj_resetData`: the model's default state, time 0, warnings cleared.
    pub fn reset_data(&mut self) {
        // SAFETY: matching model and data.
        unsafe { bindings::mj_resetData(self.m(), self.data.as_ptr()) };
    }

    /// `mj_forward`: everything that depends on the state, without advancing time.
    pub fn forward(&mut self) {
        // SAFETY: matching model and data.
        unsafe { bindings::mj_forward(self.m(), self.data.as_ptr()) };
    }

    /// `mj_forward` with actuation disabled, as dm_control's `Physics.reset` and
    /// `after_reset` do: there are no meaningful controls yet.
    pub fn forward_without_actuation(&mut self) {
        let flag = bindings::mjtDisableBit_mjDSBL_ACTUATION as c_int;
        // SAFETY: we own the model exclusively through &mut self; the flag is restored.
        let opt = unsafe { &mut (*self.model.raw.as_ptr()).opt };
        let old = opt.disableflags;
        opt.disableflags = old | flag;
        self.forward();
        // SAFETY: as above.
        unsafe { (*self.model.raw.as_ptr()).opt.disableflags = old };
    }

    /// `mj_step`: one full time step.
    pub fn step(&mut self) {
        // SAFETY: matching model and data.
        unsafe { bindings::mj_step(self.m(), self.data.as_ptr()) };
    }

    /// `mj_step1`: the position- and velocity-dependent half of a step.
    pub fn step1(&mut self) {
        // SAFETY: matching model and data.
        unsafe { bindings::mj_step1(self.m(), self.data.as_ptr()) };
    }

    /// `mj_step2`: the rest of a step, after `step1` and setting controls.
    pub fn step2(&mut self) {
        // SAFETY: matching model and data.
        unsafe { bindings::mj_step2(self.m(), self.data.as_ptr()) };
    }

    /// Simulation time in seconds.
    pub fn time(&self) -> f64 {
        self.d().time
    }

    /// Sets the simulation time (dm_control's `data.time = 0` after a settling phase).
    pub fn set_time(&mut self, time: f64) {
        // SAFETY: we own the data exclusively through &mut self.
        unsafe { (*self.data.as_ptr()).time = time };
    }

    /// Number of contacts found by the last collision detection (`ncon`).
    pub fn ncon(&self) -> usize {
        self.d().ncon as usize
    }

    /// All sensor values (`sensordata`, `nsensordata` long).
    pub fn sensordata(&self) -> &[f64] {
        let n = self.model.raw().nsensordata as usize;
        // SAFETY: sensordata has nsensordata entries.
        unsafe { std::slice::from_raw_parts(self.d().sensordata, n) }
    }

    /// A geom's position in the world frame (`geom_xpos`).
    pub fn geom_xpos(&self, geom: usize) -> [f64; 3] {
        // SAFETY: geom_xpos has ngeom × 3 entries.
        to3(unsafe { row(self.d().geom_xpos, self.model.raw().ngeom as usize, 3, geom) })
    }

    /// A site's position in the world frame (`site_xpos`).
    pub fn site_xpos(&self, site: usize) -> [f64; 3] {
        // SAFETY: site_xpos has nsite × 3 entries.
        to3(unsafe { row(self.d().site_xpos, self.model.raw().nsite as usize, 3, site) })
    }

    /// Generalised positions, length `nq`.
    pub fn qpos(&self) -> &[f64] {
        // SAFETY: qpos has nq entries and lives as long as the data.
        unsafe { std::slice::from_raw_parts(self.d().qpos, self.model.nq()) }
    }

    pub fn qpos_mut(&mut self) -> &mut [f64] {
        let n = self.model.nq();
        // SAFETY: as qpos, borrowed exclusively.
        unsafe { std::slice::from_raw_parts_mut(self.d().qpos, n) }
    }

    /// Generalised velocities, length `nv`.
    pub fn qvel(&self) -> &[f64] {
        // SAFETY: qvel has nv entries.
        unsafe { std::slice::from_raw_parts(self.d().qvel, self.model.nv()) }
    }

    pub fn qvel_mut(&mut self) -> &mut [f64] {
        let n = self.model.nv();
        // SAFETY: as qvel, borrowed exclusively.
        unsafe { std::slice::from_raw_parts_mut(self.d().qvel, n) }
    }

    /// Actuator controls, length `nu`.
    pub fn ctrl(&self) -> &[f64] {
        // SAFETY: ctrl has nu entries.
        unsafe { std::slice::from_raw_parts(self.d().ctrl, self.model.nu()) }
    }

    pub fn ctrl_mut(&mut self) -> &mut [f64] {
        let n = self.model.nu();
        // SAFETY: as ctrl, borrowed exclusively.
        unsafe { std::slice::from_raw_parts_mut(self.d().ctrl, n) }
    }

    /// A body's orientation in the world frame, row-major 3×3 (`xmat`).
    ///
    /// # Panics
    /// If `body` is not a body id of this model.
    pub fn xmat(&self, body: usize) -> [f64; 9] {
        assert!(body < self.model.nbody(), "body id {body} out of range");
        // SAFETY: xmat has nbody × 9 entries.
        let all = unsafe { std::slice::from_raw_parts(self.d().xmat, self.model.nbody() * 9) };
        let mut out = [0.0; 9];
        out.copy_from_slice(&all[body * 9..body * 9 + 9]);
        out
    }

    /// A body's position in the world frame (`xpos`).
    ///
    /// # Panics
    /// If `body` is not a body id of this model.
    pub fn xpos(&self, body: usize) -> [f64; 3] {
        assert!(body < self.model.nbody(), "body id {body} out of range");
        // SAFETY: xpos has nbody × 3 entries.
        let all = unsafe { std::slice::from_raw_parts(self.d().xpos, self.model.nbody() * 3) };
        [all[body * 3], all[body * 3 + 1], all[body * 3 + 2]]
    }

    /// The warning counters, to compare before and after a step as dm_control does.
    pub fn warnings(&self) -> WarningCounts {
        let mut counts = [0; NWARNING];
        for (c, w) in counts.iter_mut().zip(self.d().warning.iter()) {
            *c = w.number;
        }
        WarningCounts { counts }
    }
}

impl Drop for Physics {
    fn drop(&mut self) {
        // SAFETY: owned; the model is dropped after this.
        unsafe { bindings::mj_deleteData(self.data.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PENDULUM: &str = r#"
<mujoco>
  <include file="./parts/option.xml"/>
  <worldbody>
    <body name="pole" pos="0 0 1">
      <joint name="hinge" type="hinge" axis="0 1 0"/>
      <geom name="rod" type="capsule" fromto="0 0 0 0 0 -1" size="0.05" mass="1"/>
    </body>
  </worldbody>
  <actuator><motor name="torque" joint="hinge" ctrllimited="true" ctrlrange="-2 2"/></actuator>
</mujoco>"#;

    fn pendulum() -> Physics {
        let option = Asset {
            name: "./parts/option.xml".into(),
            contents: br#"<mujoco><option timestep="0.01" integrator="RK4"/></mujoco>"#.to_vec(),
        };
        Physics::new(Model::from_xml(PENDULUM, &[option]).unwrap()).unwrap()
    }

    #[test]
    fn links_mujoco_3_17_0() {
        assert_eq!(version(), 3017000);
        assert_eq!(version_string(), "3.17.0");
        assert_eq!(VERSION, 3017000);
    }

    #[test]
    fn loads_a_model_with_an_included_file_and_steps_it() {
        let mut physics = pendulum();
        let m = physics.model();
        assert_eq!((m.nq(), m.nv(), m.nu(), m.nbody()), (1, 1, 1, 2));
        assert_eq!(m.timestep(), 0.01);
        assert!(m.is_rk4());
        assert_eq!(m.ctrl_ranges(), vec![Some(CtrlRange { low: -2.0, high: 2.0 })]);
        let hinge = m.id(ObjKind::Joint, "hinge").unwrap();
        assert_eq!((m.joint_qpos_adr(hinge), m.joint_dof_adr(hinge)), (0, 0));
        assert_eq!(m.id(ObjKind::Body, "pole").unwrap(), 1);
        assert!(matches!(m.id(ObjKind::Geom, "nope"), Err(Error::UnknownName { kind: "geom", .. })));

        physics.qpos_mut()[0] = 0.5;
        physics.forward();
        let before = physics.warnings();
        for _ in 0..10 {
            physics.step();
        }
        assert!((physics.time() - 0.1).abs() < 1e-12);
        // Gravity swings the displaced pendulum back towards the bottom.
        assert!(physics.qpos()[0] < 0.5 && physics.qvel()[0] < 0.0);
        assert!(physics.warnings().new_since(&before).is_empty());
        // The pole's z axis is tilted by the hinge angle about y (after `forward`: mj_step
        // leaves the kinematics of the state before its last update).
        physics.forward();
        let r = physics.xmat(1);
        assert!((r[8] - physics.qpos()[0].cos()).abs() < 1e-12);

        physics.reset_data();
        assert_eq!((physics.time(), physics.qpos()[0], physics.qvel()[0]), (0.0, 0.0, 0.0));
    }

    #[test]
    fn actuation_can_be_disabled_for_one_forward_pass() {
        let mut physics = pendulum();
        physics.ctrl_mut()[0] = 1.0;
        physics.forward_without_actuation();
        physics.step1();
        physics.step2();
        // Stepping still applies the control afterwards: the flag was restored.
        assert!(physics.qvel()[0] > 0.0);
    }

    #[test]
    fn warnings_leave_no_log_file() {
        let log = std::path::Path::new("MUJOCO_LOG.TXT");
        let _ = std::fs::remove_file(log);
        // `settotalmass` is deprecated in 3.17.0, as in dm_control's walker and cheetah.
        let xml = PENDULUM.replace("<worldbody>", r#"<compiler settotalmass="2"/><worldbody>"#);
        let option =
            Asset { name: "./parts/option.xml".into(), contents: b"<mujoco><option/></mujoco>".to_vec() };
        Model::from_xml(&xml, &[option]).unwrap();
        assert!(!log.exists(), "MuJoCo wrote {}", log.display());
    }

    #[test]
    fn load_errors_are_one_message() {
        let err = Model::from_xml("<mujoco><worldbody><body></mujoco>", &[]).err().unwrap();
        assert!(matches!(err, Error::Load(_)), "{err}");
        let err = Model::from_xml(PENDULUM, &[]).err().unwrap();
        assert!(err.to_string().contains("option.xml"), "{err}");
    }

    #[test]
    fn renders_the_pendulum_and_refuses_frames_it_cannot_make() {
        let mut physics = pendulum();
        physics.forward();
        let mut renderer = Renderer::new(&physics).unwrap();
        let image = renderer.render(&mut physics, 48, 64, CameraId::Free).unwrap();
        assert_eq!(image.rgb.len(), 48 * 64 * 3);
        // The free camera looks at the model: the capsule's pixels differ from the background.
        let first = &image.rgb[..3];
        assert!(image.rgb.chunks_exact(3).any(|p| p != first), "a uniform frame");
        // Same state, same frame.
        assert_eq!(renderer.render(&mut physics, 48, 64, CameraId::Free).unwrap(), image);
        let (w, h) = physics.model().offscreen_size();
        let err = renderer.render(&mut physics, h + 1, w, CameraId::Free).unwrap_err();
        assert!(err.to_string().contains("offscreen buffer"), "{err}");
        let err = renderer.render(&mut physics, 8, 8, CameraId::Fixed(0)).unwrap_err();
        assert!(err.to_string().contains("0 cameras"), "{err}");
    }
}
