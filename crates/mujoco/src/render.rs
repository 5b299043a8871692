//! Headless rendering on MuJoCo's own OpenGL renderer through EGL, repeating the calls
//! dm_control 1.0.50 makes for `physics.render(height, width, camera_id)` under
//! `MUJOCO_GL=egl`, so that the frames are the ones a dm_control user gets.
//!
//! What dm_control does, and this module repeats:
//!
//! * EGL display: the first device of `eglQueryDevicesEXT` (or `MUJOCO_EGL_DEVICE_ID`)
//!   whose platform display initialises; config RGBA 8 bits, depth 24, stencil 8, RGB
//!   colour buffer, pbuffer surfaces, desktop OpenGL; a context current with no surface.
//! * MuJoCo context: `mjr_makeContext(model, mjFONTSCALE_150)` then
//!   `mjr_setBuffer(mjFB_OFFSCREEN)`; the offscreen buffer is the model's
//!   `<global offwidth offheight>`, which bounds the frame size.
//! * Per frame: a scene of `max(1000, estimate)` geoms, default options with the
//!   rangefinder flag off, an inactive perturbation, a fixed camera by id (or MuJoCo's
//!   default free camera for -1), `mjv_updateScene(.., mjCAT_ALL, ..)`, `mjr_render` on the
//!   `(0, 0, width, height)` viewport and `mjr_readPixels`, whose bottom-up rows are flipped.
//!
//! libEGL is opened at run time, not linked, so that programs that never render (state
//! observations) run on machines without it.

use crate::bindings;
use crate::{Error, Physics, Result};
use std::ffi::{c_char, c_void};
use std::sync::OnceLock;

type EglDisplay = *mut c_void;
type EglContext = *mut c_void;
type EglSurface = *mut c_void;
type EglConfig = *mut c_void;
type EglDevice = *mut c_void;
type EglBoolean = u32;
type EglInt = i32;
type EglEnum = u32;

const EGL_SUCCESS: EglInt = 0x3000;
const EGL_TRUE: EglBoolean = 1;
const EGL_NONE: EglInt = 0x3038;
const EGL_RED_SIZE: EglInt = 0x3024;
const EGL_GREEN_SIZE: EglInt = 0x3023;
const EGL_BLUE_SIZE: EglInt = 0x3022;
const EGL_ALPHA_SIZE: EglInt = 0x3021;
const EGL_DEPTH_SIZE: EglInt = 0x3025;
const EGL_STENCIL_SIZE: EglInt = 0x3026;
const EGL_COLOR_BUFFER_TYPE: EglInt = 0x303F;
const EGL_RGB_BUFFER: EglInt = 0x308E;
const EGL_SURFACE_TYPE: EglInt = 0x3033;
const EGL_PBUFFER_BIT: EglInt = 0x0001;
const EGL_RENDERABLE_TYPE: EglInt = 0x3040;
const EGL_OPENGL_BIT: EglInt = 0x0008;
const EGL_OPENGL_API: EglEnum = 0x30A2;
const EGL_PLATFORM_DEVICE_EXT: EglEnum = 0x313F;
const EGL_DRAW: EglInt = 0x3059;
const EGL_READ: EglInt = 0x305A;

/// dm_control's `EGL_ATTRIBUTES` (`dm_control/_render/pyopengl/egl_renderer.py`).
const CONFIG_ATTRIBUTES: [EglInt; 19] = [
    EGL_RED_SIZE,
    8,
    EGL_GREEN_SIZE,
    8,
    EGL_BLUE_SIZE,
    8,
    EGL_ALPHA_SIZE,
    8,
    EGL_DEPTH_SIZE,
    24,
    EGL_STENCIL_SIZE,
    8,
    EGL_COLOR_BUFFER_TYPE,
    EGL_RGB_BUFFER,
    EGL_SURFACE_TYPE,
    EGL_PBUFFER_BIT,
    EGL_RENDERABLE_TYPE,
    EGL_OPENGL_BIT,
    EGL_NONE,
];

/// The EGL entry points used here, resolved from libEGL at run time.
struct Egl {
    get_error: unsafe extern "C" fn() -> EglInt,
    initialize: unsafe extern "C" fn(EglDisplay, *mut EglInt, *mut EglInt) -> EglBoolean,
    choose_config:
        unsafe extern "C" fn(EglDisplay, *const EglInt, *mut EglConfig, EglInt, *mut EglInt) -> EglBoolean,
    bind_api: unsafe extern "C" fn(EglEnum) -> EglBoolean,
    query_api: unsafe extern "C" fn() -> EglEnum,
    create_context: unsafe extern "C" fn(EglDisplay, EglConfig, EglContext, *const EglInt) -> EglContext,
    destroy_context: unsafe extern "C" fn(EglDisplay, EglContext) -> EglBoolean,
    make_current: unsafe extern "C" fn(EglDisplay, EglSurface, EglSurface, EglContext) -> EglBoolean,
    get_current_context: unsafe extern "C" fn() -> EglContext,
    get_current_display: unsafe extern "C" fn() -> EglDisplay,
    get_current_surface: unsafe extern "C" fn(EglInt) -> EglSurface,
    /// The initialised display every renderer of the process shares (as dm_control's
    /// module-level `EGL_DISPLAY`); never terminated, since a Python dm_control in the same
    /// process gets the same display from the same device.
    display: EglDisplay,
    // Keeps the library loaded for the process's lifetime.
    _lib: libloading::Library,
}

// SAFETY: function pointers and a display handle, which EGL allows any thread to use.
unsafe impl Send for Egl {}
unsafe impl Sync for Egl {}

static EGL: OnceLock<std::result::Result<Egl, String>> = OnceLock::new();

fn egl() -> Result<&'static Egl> {
    EGL.get_or_init(load_egl).as_ref().map_err(|detail| Error::Egl { detail: detail.clone() })
}

/// Resolves `name` from the library as a function pointer of type `T`.
///
/// # Safety
/// `T` must be the function's C signature.
unsafe fn symbol<T: Copy>(lib: &libloading::Library, name: &str) -> std::result::Result<T, String> {
    // SAFETY: the caller names the right signature.
    unsafe { lib.get::<T>(name.as_bytes()) }.map(|s| *s).map_err(|e| format!("libEGL has no {name}: {e}"))
}

/// dm_control's variable for picking one EGL device by index.
const DEVICE_VAR: &str = "MUJOCO_EGL_DEVICE_ID";

/// The devices to try: all of them, or the one `MUJOCO_EGL_DEVICE_ID` names.
fn device_range(devices: usize, chosen: Option<&str>) -> std::result::Result<std::ops::Range<usize>, String> {
    match chosen {
        None => Ok(0..devices),
        Some(id) => match id.trim().parse::<usize>() {
            Ok(index) if index < devices => Ok(index..index + 1),
            _ => Err(format!(
                "{DEVICE_VAR} must be an integer between 0 and {}, got {id:?}",
                devices.saturating_sub(1)
            )),
        },
    }
}

fn load_egl() -> std::result::Result<Egl, String> {
    // RTLD_GLOBAL so that MuJoCo's GL loader, which looks `eglGetProcAddress` up among the
    // libraries already loaded, finds it.
    // SAFETY: loading the system's libEGL runs no initialisers with preconditions.
    let lib: libloading::Library = unsafe {
        libloading::os::unix::Library::open(
            Some("libEGL.so.1"),
            libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL,
        )
    }
    .map_err(|e| format!("cannot load libEGL.so.1: {e}"))?
    .into();
    // SAFETY: every signature below is the one in EGL/egl.h and EGL/eglext.h.
    unsafe {
        let get_proc: unsafe extern "C" fn(*const c_char) -> *mut c_void = symbol(&lib, "eglGetProcAddress")?;
        let query_devices = get_proc(c"eglQueryDevicesEXT".as_ptr());
        let platform_display = get_proc(c"eglGetPlatformDisplayEXT".as_ptr());
        if query_devices.is_null() || platform_display.is_null() {
            return Err("libEGL lacks EGL_EXT_device_enumeration / EGL_EXT_platform_device".into());
        }
        let query_devices: unsafe extern "C" fn(EglInt, *mut EglDevice, *mut EglInt) -> EglBoolean =
            std::mem::transmute(query_devices);
        let platform_display: unsafe extern "C" fn(EglEnum, *mut c_void, *const EglInt) -> EglDisplay =
            std::mem::transmute(platform_display);
        let mut egl = Egl {
            get_error: symbol(&lib, "eglGetError")?,
            initialize: symbol(&lib, "eglInitialize")?,
            choose_config: symbol(&lib, "eglChooseConfig")?,
            bind_api: symbol(&lib, "eglBindAPI")?,
            query_api: symbol(&lib, "eglQueryAPI")?,
            create_context: symbol(&lib, "eglCreateContext")?,
            destroy_context: symbol(&lib, "eglDestroyContext")?,
            make_current: symbol(&lib, "eglMakeCurrent")?,
            get_current_context: symbol(&lib, "eglGetCurrentContext")?,
            get_current_display: symbol(&lib, "eglGetCurrentDisplay")?,
            get_current_surface: symbol(&lib, "eglGetCurrentSurface")?,
            display: std::ptr::null_mut(),
            _lib: lib,
        };
        let mut count: EglInt = 0;
        if query_devices(0, std::ptr::null_mut(), &mut count) != EGL_TRUE || count <= 0 {
            return Err("eglQueryDevicesEXT found no EGL device".into());
        }
        let mut devices = vec![std::ptr::null_mut(); count as usize];
        if query_devices(count, devices.as_mut_ptr(), &mut count) != EGL_TRUE {
            return Err("eglQueryDevicesEXT failed".into());
        }
        devices.truncate(count.max(0) as usize);
        let chosen = device_range(devices.len(), std::env::var(DEVICE_VAR).ok().as_deref())?;
        let candidates = &devices[chosen];
        for &device in candidates {
            let display = platform_display(EGL_PLATFORM_DEVICE_EXT, device, std::ptr::null());
            if display.is_null() || (egl.get_error)() != EGL_SUCCESS {
                continue;
            }
            if (egl.initialize)(display, std::ptr::null_mut(), std::ptr::null_mut()) == EGL_TRUE
                && (egl.get_error)() == EGL_SUCCESS
            {
                egl.display = display;
                return Ok(egl);
            }
        }
        Err("cannot initialise a headless EGL display on any EGL device".into())
    }
}

/// The EGL context current on this thread when a render started, put back when it ends,
/// so that another renderer on the same thread (dm_control's, which remembers which context
/// it made current and does not make it current again) keeps drawing into its own.
struct CurrentContext<'a> {
    egl: &'a Egl,
    api: EglEnum,
    display: EglDisplay,
    draw: EglSurface,
    read: EglSurface,
    context: EglContext,
}

impl<'a> CurrentContext<'a> {
    /// Makes `context` current after noting what was.
    fn enter(egl: &'a Egl, context: EglContext) -> Result<CurrentContext<'a>> {
        // SAFETY: queries and state changes of this thread's EGL bindings.
        unsafe {
            let saved = CurrentContext {
                egl,
                api: (egl.query_api)(),
                display: (egl.get_current_display)(),
                draw: (egl.get_current_surface)(EGL_DRAW),
                read: (egl.get_current_surface)(EGL_READ),
                context: (egl.get_current_context)(),
            };
            (egl.bind_api)(EGL_OPENGL_API);
            if (egl.make_current)(egl.display, std::ptr::null_mut(), std::ptr::null_mut(), context)
                != EGL_TRUE
            {
                let code = (egl.get_error)();
                drop(saved);
                return Err(Error::Egl { detail: format!("eglMakeCurrent failed (EGL error {code:#x})") });
            }
            Ok(saved)
        }
    }
}

impl Drop for CurrentContext<'_> {
    fn drop(&mut self) {
        let egl = self.egl;
        // SAFETY: restores handles EGL itself reported as current on this thread.
        unsafe {
            if self.context.is_null() {
                (egl.make_current)(
                    egl.display,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                );
            } else {
                (egl.make_current)(self.display, self.draw, self.read, self.context);
            }
            (egl.bind_api)(self.api);
        }
    }
}

/// Which camera a frame is seen from, dm_control's `camera_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CameraId {
    /// MuJoCo's default free camera (`camera_id=-1`).
    Free,
    /// A camera the model defines, by index.
    Fixed(usize),
}

impl CameraId {
    /// dm_control's integer convention: -1 is the free camera, 0.. the model's cameras.
    pub fn from_index(index: i64) -> Result<CameraId> {
        match index {
            -1 => Ok(CameraId::Free),
            i if i >= 0 => Ok(CameraId::Fixed(i as usize)),
            other => Err(Error::Render(format!("camera id {other} is below -1"))),
        }
    }
}

/// An RGB frame, rows top to bottom, 3 bytes per pixel (dm_control's `(height, width, 3)`
/// uint8 array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub height: usize,
    pub width: usize,
    pub rgb: Vec<u8>,
}

/// An EGL context with MuJoCo's GL resources for one model (dm_control's
/// `Physics.contexts`), made current only for the duration of each render.
pub struct Renderer {
    context: EglContext,
    con: Box<bindings::mjrContext>,
    /// Id of the model the GL resources were uploaded from; frames of another are refused.
    model: u64,
    max_geom: i32,
}

// SAFETY: the EGL context is made current (and released) inside each call, so the renderer
// may be moved to and used from another thread, one thread at a time.
unsafe impl Send for Renderer {}

/// dm_control's `_estimate_max_renderable_geoms`, floored at 1000 as in its `MjvScene`.
fn max_geom(m: &bindings::mjModel) -> i32 {
    let frames = [m.nbody, m.ngeom, m.nsite, m.ncam, m.nlight].into_iter().max().unwrap_or(0);
    let estimate = 3 * frames
        + 4 * m.ngeom
        + 3 * m.nbody
        + m.nsite
        + m.ntendon
        + m.njnt
        + m.nu
        + m.nskin
        + m.ncam
        + m.nlight;
    estimate.max(1000).min(i32::MAX as i64) as i32
}

impl Renderer {
    /// Creates the EGL context and uploads the model's meshes, textures and fonts
    /// (`mjr_makeContext` at font scale 150, as dm_control's `MjrContext`).
    pub fn new(physics: &Physics) -> Result<Renderer> {
        let egl = egl()?;
        let mut config: EglConfig = std::ptr::null_mut();
        let mut configs: EglInt = 0;
        // SAFETY: valid display and attribute list; room for one config.
        let context = unsafe {
            (egl.choose_config)(egl.display, CONFIG_ATTRIBUTES.as_ptr(), &mut config, 1, &mut configs);
            if configs < 1 {
                return Err(Error::Egl {
                    detail: "no EGL framebuffer configuration with 8-bit RGBA, 24-bit depth and 8-bit \
                             stencil for desktop OpenGL"
                        .into(),
                });
            }
            let previous = (egl.query_api)();
            (egl.bind_api)(EGL_OPENGL_API);
            let context = (egl.create_context)(egl.display, config, std::ptr::null_mut(), std::ptr::null());
            (egl.bind_api)(previous);
            context
        };
        if context.is_null() {
            // SAFETY: reads this thread's last EGL error.
            let code = unsafe { (egl.get_error)() };
            return Err(Error::Egl {
                detail: format!("cannot create an OpenGL context (EGL error {code:#x})"),
            });
        }
        let m = physics.m();
        // SAFETY: a zeroed mjrContext is what mjr_defaultContext then initialises.
        let mut con: Box<bindings::mjrContext> = Box::new(unsafe { std::mem::zeroed() });
        {
            let _current = match CurrentContext::enter(egl, context) {
                Ok(current) => current,
                Err(e) => {
                    // SAFETY: created above, never current.
                    unsafe { (egl.destroy_context)(egl.display, context) };
                    return Err(e);
                }
            };
            // SAFETY: our context is current; the model is valid.
            unsafe {
                bindings::mjr_defaultContext(&mut *con);
                bindings::mjr_makeContext(m, &mut *con, bindings::mjtFontScale__mjFONTSCALE_150 as i32);
                bindings::mjr_setBuffer(bindings::mjtFramebuffer__mjFB_OFFSCREEN as i32, &mut *con);
            }
        }
        // SAFETY: valid model.
        let raw = unsafe { &*m };
        Ok(Renderer { context, con, model: physics.model().instance_id(), max_geom: max_geom(raw) })
    }

    /// Renders the current state of `physics` as dm_control's `physics.render(height,
    /// width, camera_id)` does.
    pub fn render(
        &mut self,
        physics: &mut Physics,
        height: usize,
        width: usize,
        camera: CameraId,
    ) -> Result<Image> {
        if physics.model().instance_id() != self.model {
            return Err(Error::Render("the renderer was made for another model".into()));
        }
        let (max_width, max_height) = physics.model().offscreen_size();
        if width == 0 || height == 0 || width > max_width || height > max_height {
            return Err(Error::Render(format!(
                "a {height}x{width} frame does not fit the model's {max_height}x{max_width} offscreen \
                 buffer (<visual><global offwidth offheight/></visual>)"
            )));
        }
        let ncam = physics.model().ncam();
        if let CameraId::Fixed(id) = camera {
            if id >= ncam {
                return Err(Error::Render(format!(
                    "the model has {ncam} cameras; camera {id} does not exist"
                )));
            }
        }
        let egl = egl()?;
        let m = physics.m();
        let d = physics.data.as_ptr();
        // SAFETY: zeroed structs are what the mjv_default* calls then initialise; every
        // pointer handed to MuJoCo is valid for the call; our context is current for the
        // GL calls; the scene is freed before returning.
        unsafe {
            let mut option: bindings::mjvOption = std::mem::zeroed();
            bindings::mjv_defaultOption(&mut option);
            option.flags[bindings::mjtVisFlag__mjVIS_RANGEFINDER as usize] = 0;
            let mut perturb: bindings::mjvPerturb = std::mem::zeroed();
            bindings::mjv_defaultPerturb(&mut perturb);
            perturb.active = 0;
            perturb.select = 0;
            let mut cam: bindings::mjvCamera = std::mem::zeroed();
            bindings::mjv_defaultCamera(&mut cam);
            match camera {
                CameraId::Free => {
                    cam.fixedcamid = -1;
                    cam.type_ = bindings::mjtCamera__mjCAMERA_FREE as i32;
                    bindings::mjv_defaultFreeCamera(m, &mut cam);
                }
                CameraId::Fixed(id) => {
                    cam.fixedcamid = id as i32;
                    cam.type_ = bindings::mjtCamera__mjCAMERA_FIXED as i32;
                }
            }
            let mut scene: Box<bindings::mjvScene> = Box::new(std::mem::zeroed());
            bindings::mjv_defaultScene(&mut *scene);
            bindings::mjv_makeScene(m, &mut *scene, self.max_geom);
            let rect = bindings::mjrRect { left: 0, bottom: 0, width: width as i32, height: height as i32 };
            let mut rgb = vec![0u8; height * width * 3];
            let rendered = CurrentContext::enter(egl, self.context).map(|_current| {
                bindings::mjr_setBuffer(bindings::mjtFramebuffer__mjFB_OFFSCREEN as i32, &mut *self.con);
                bindings::mjv_updateScene(
                    m,
                    d,
                    &option,
                    &perturb,
                    &mut cam,
                    bindings::mjtCatBit__mjCAT_ALL as i32,
                    &mut *scene,
                );
                bindings::mjr_render(rect, &mut *scene, &*self.con);
                bindings::mjr_readPixels(rgb.as_mut_ptr(), std::ptr::null_mut(), rect, &*self.con);
            });
            bindings::mjv_freeScene(&mut *scene);
            rendered?;
            // OpenGL's rows run bottom to top; dm_control's `to_pixels` flips them.
            let row = width * 3;
            let mut flipped = Vec::with_capacity(rgb.len());
            for line in rgb.chunks_exact(row).rev() {
                flipped.extend_from_slice(line);
            }
            Ok(Image { height, width, rgb: flipped })
        }
    }
}

impl Drop for Renderer {
    fn drop(&mut self) {
        let Ok(egl) = egl() else { return };
        if let Ok(_current) = CurrentContext::enter(egl, self.context) {
            // SAFETY: our context is current; the MuJoCo context was made in it.
            unsafe { bindings::mjr_freeContext(&mut *self.con) };
        }
        // SAFETY: our context, no longer current on this thread.
        unsafe { (egl.destroy_context)(egl.display, self.context) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_variable_picks_one_device_or_says_what_it_must_be() {
        assert_eq!(device_range(3, None), Ok(0..3));
        assert_eq!(device_range(3, Some("2")), Ok(2..3));
        let err = device_range(3, Some("3")).unwrap_err();
        assert!(err.contains("between 0 and 2") && err.contains("\"3\""), "{err}");
        assert!(device_range(3, Some("gpu")).is_err());
        let message = Error::Egl { detail: err }.to_string();
        assert!(message.contains("libegl1") && message.contains("libegl-mesa0"), "{message}");
    }
}
