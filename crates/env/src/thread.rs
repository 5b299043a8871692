//! Environments on their own threads, so several step at once.
//!
//! A [`ThreadEnv`] builds its environment (`make_env`) on a thread of its own and serves
//! requests from there: the environment never moves between threads, so the native MuJoCo
//! backend's EGL context stays on the thread that made it, and nothing needs to be `Send`
//! but the requests and replies. The calls come in halves, `begin_step` then `finish_step`,
//! so a caller can start every environment's step and plan for one while the others
//! simulate and render; [`Env`] is implemented too, for one-at-a-time use.
//!
//! dm_control runs under Python's global lock, which would serialise the threads, so
//! [`parallel_backend_error`] refuses more than one dm_control environment: several
//! environments in parallel are for the native MuJoCo backend and the Rust toy tasks.

use crate::spec::{ActionSpec, Env, Frame, Obs, ObsSpec, Step};
use crate::{make_env, Error, Result, TaskName};
use gradplan_config::{EnvBackend, EnvConfig};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;

enum Request {
    Reset(Option<u64>),
    Step(Vec<f32>),
    Render { height: usize, width: usize },
}

enum Reply {
    Obs(Result<Obs>),
    Step(Result<Step>),
    Frame(Result<Frame>),
}

/// What the worker sends once, after building its environment.
struct Ready {
    name: String,
    action_spec: ActionSpec,
    obs_spec: ObsSpec,
    action_repeat: usize,
}

/// Which reply the request in flight will get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Obs,
    Step,
    Frame,
}

/// An environment living on its own thread (see the module's documentation).
pub struct ThreadEnv {
    requests: Option<Sender<Request>>,
    replies: Receiver<Reply>,
    thread: Option<JoinHandle<()>>,
    pending: Option<Pending>,
    name: String,
    action_spec: ActionSpec,
    obs_spec: ObsSpec,
    action_repeat: usize,
}

/// `Some(error)` when `envs` environments of `cfg` cannot step in parallel: more than one
/// dm_control environment, which Python's global lock would serialise.
pub fn parallel_backend_error(cfg: &EnvConfig, envs: usize) -> Option<Error> {
    let native_task = TaskName::parse(&cfg.task).map(|n| n.is_native()).unwrap_or(false);
    (envs > 1 && !native_task && cfg.backend == EnvBackend::Dmc).then(|| {
        Error::Backend(format!(
            "{envs} parallel environments need the native MuJoCo backend: dm_control steps under \
             Python's global lock, one environment at a time. Run the task natively (`--backend \
             native`, the same episodes as dm_control) or use one environment"
        ))
    })
}

impl ThreadEnv {
    /// Builds the environment `cfg` names on a new thread; its error, if building fails.
    pub fn spawn(cfg: &EnvConfig) -> Result<ThreadEnv> {
        let (request_tx, request_rx) = channel::<Request>();
        let (reply_tx, reply_rx) = channel::<Reply>();
        let (ready_tx, ready_rx) = channel::<Result<Ready>>();
        let cfg = cfg.clone();
        let thread = std::thread::Builder::new()
            .name(format!("env-{}", cfg.task))
            .spawn(move || serve(&cfg, &ready_tx, &request_rx, &reply_tx))
            .map_err(|e| Error::Backend(format!("could not start an environment thread: {e}")))?;
        let ready = match ready_rx.recv() {
            Ok(ready) => ready,
            Err(_) => Err(Error::Backend("the environment thread stopped while starting".into())),
        };
        let ready = match ready {
            Ok(ready) => ready,
            Err(e) => {
                let _ = thread.join();
                return Err(e);
            }
        };
        Ok(ThreadEnv {
            requests: Some(request_tx),
            replies: reply_rx,
            thread: Some(thread),
            pending: None,
            name: ready.name,
            action_spec: ready.action_spec,
            obs_spec: ready.obs_spec,
            action_repeat: ready.action_repeat,
        })
    }

    /// `n` environments of `cfg`, each on its own thread (checked by
    /// [`parallel_backend_error`] first).
    pub fn spawn_many(cfg: &EnvConfig, n: usize) -> Result<Vec<ThreadEnv>> {
        if let Some(e) = parallel_backend_error(cfg, n) {
            return Err(e);
        }
        (0..n).map(|_| ThreadEnv::spawn(cfg)).collect()
    }

    fn send(&mut self, request: Request, reply: Pending) -> Result<()> {
        if let Some(p) = self.pending {
            return Err(Error::Backend(format!(
                "a new request while the environment's {p:?} reply is outstanding; finish it first"
            )));
        }
        let sent = self.requests.as_ref().map(|tx| tx.send(request).is_ok()).unwrap_or(false);
        if !sent {
            return Err(self.worker_gone());
        }
        self.pending = Some(reply);
        Ok(())
    }

    fn receive(&mut self, want: Pending) -> Result<Reply> {
        if self.pending != Some(want) {
            return Err(Error::Backend(format!(
                "waiting for a {want:?} reply, but the request in flight is {:?}",
                self.pending
            )));
        }
        self.pending = None;
        self.replies.recv().map_err(|_| self.worker_gone())
    }

    /// The worker thread ended without answering: it panicked (its message is on stderr).
    fn worker_gone(&self) -> Error {
        Error::Backend(format!("the thread of environment {} stopped unexpectedly", self.name))
    }

    /// Waits for the reply in flight, if any, and drops it: after an error elsewhere, so the
    /// environment takes requests again.
    pub fn settle(&mut self) {
        if self.pending.take().is_some() {
            let _ = self.replies.recv();
        }
    }

    /// Starts a reset; [`ThreadEnv::finish_reset`] returns its observation.
    pub fn begin_reset(&mut self, seed: Option<u64>) -> Result<()> {
        self.send(Request::Reset(seed), Pending::Obs)
    }

    pub fn finish_reset(&mut self) -> Result<Obs> {
        match self.receive(Pending::Obs)? {
            Reply::Obs(r) => r,
            _ => Err(Error::Backend("the environment thread answered another request".into())),
        }
    }

    /// Starts a step; [`ThreadEnv::finish_step`] returns it. The action is checked here, so
    /// a wrong one fails at once.
    pub fn begin_step(&mut self, action: &[f32]) -> Result<()> {
        if action.len() != self.action_spec.dim() {
            return Err(Error::ActionDim { expected: self.action_spec.dim(), got: action.len() });
        }
        self.send(Request::Step(action.to_vec()), Pending::Step)
    }

    pub fn finish_step(&mut self) -> Result<Step> {
        match self.receive(Pending::Step)? {
            Reply::Step(r) => r,
            _ => Err(Error::Backend("the environment thread answered another request".into())),
        }
    }

    /// Starts a render; [`ThreadEnv::finish_render`] returns the frame.
    pub fn begin_render(&mut self, height: usize, width: usize) -> Result<()> {
        self.send(Request::Render { height, width }, Pending::Frame)
    }

    pub fn finish_render(&mut self) -> Result<Frame> {
        match self.receive(Pending::Frame)? {
            Reply::Frame(r) => r,
            _ => Err(Error::Backend("the environment thread answered another request".into())),
        }
    }
}

/// The worker: builds the environment, reports, then answers requests until the sender is
/// dropped.
fn serve(
    cfg: &EnvConfig,
    ready: &Sender<Result<Ready>>,
    requests: &Receiver<Request>,
    replies: &Sender<Reply>,
) {
    let mut env = match make_env(cfg) {
        Ok(env) => env,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let info = Ready {
        name: env.name().to_owned(),
        action_spec: env.action_spec().clone(),
        obs_spec: env.obs_spec(),
        action_repeat: env.action_repeat(),
    };
    if ready.send(Ok(info)).is_err() {
        return;
    }
    while let Ok(request) = requests.recv() {
        let reply = match request {
            Request::Reset(seed) => Reply::Obs(env.reset(seed)),
            Request::Step(action) => Reply::Step(env.step(&action)),
            Request::Render { height, width } => Reply::Frame(env.render(height, width)),
        };
        if replies.send(reply).is_err() {
            return;
        }
    }
}

impl Drop for ThreadEnv {
    fn drop(&mut self) {
        // Closing the channel ends the worker's loop; a reply still in flight is dropped.
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Env for ThreadEnv {
    fn name(&self) -> &str {
        &self.name
    }

    fn action_spec(&self) -> &ActionSpec {
        &self.action_spec
    }

    fn obs_spec(&self) -> ObsSpec {
        self.obs_spec
    }

    fn action_repeat(&self) -> usize {
        self.action_repeat
    }

    fn reset(&mut self, seed: Option<u64>) -> Result<Obs> {
        self.begin_reset(seed)?;
        self.finish_reset()
    }

    fn step(&mut self, action: &[f32]) -> Result<Step> {
        self.begin_step(action)?;
        self.finish_step()
    }

    fn render(&mut self, height: usize, width: usize) -> Result<Frame> {
        self.begin_render(height, width)?;
        self.finish_render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn native_cartpole() -> EnvConfig {
        EnvConfig {
            task: crate::native::TASKS[0].into(),
            obs: gradplan_config::ObsKind::State,
            ..EnvConfig::default()
        }
    }

    #[test]
    fn a_thread_env_plays_the_same_episode_as_the_env_itself() {
        let cfg = native_cartpole();
        let mut direct = make_env(&cfg).unwrap();
        let mut threaded = ThreadEnv::spawn(&cfg).unwrap();
        assert_eq!(threaded.name(), direct.name());
        assert_eq!(threaded.action_spec(), direct.action_spec());
        assert_eq!(threaded.obs_spec(), direct.obs_spec());
        assert_eq!(threaded.action_repeat(), direct.action_repeat());
        assert_eq!(threaded.reset(Some(3)).unwrap(), direct.reset(Some(3)).unwrap());
        for t in 0..40 {
            let action = [((t as f32) * 0.37).sin()];
            assert_eq!(threaded.step(&action).unwrap(), direct.step(&action).unwrap());
        }
        assert_eq!(threaded.render(16, 16).unwrap(), direct.render(16, 16).unwrap());
    }

    #[test]
    fn several_thread_envs_step_at_once_and_keep_their_own_episodes() {
        let cfg = native_cartpole();
        let mut envs = ThreadEnv::spawn_many(&cfg, 3).unwrap();
        let mut alone: Vec<_> = (0..3).map(|_| make_env(&cfg).unwrap()).collect();
        for (k, env) in envs.iter_mut().enumerate() {
            env.begin_reset(Some(k as u64)).unwrap();
        }
        for (k, env) in envs.iter_mut().enumerate() {
            assert_eq!(env.finish_reset().unwrap(), alone[k].reset(Some(k as u64)).unwrap());
        }
        for t in 0..20 {
            let action = |k: usize| [(0.3 * (t + k) as f32).cos()];
            for (k, env) in envs.iter_mut().enumerate() {
                env.begin_step(&action(k)).unwrap();
            }
            for (k, env) in envs.iter_mut().enumerate() {
                assert_eq!(env.finish_step().unwrap(), alone[k].step(&action(k)).unwrap());
            }
        }
    }

    #[test]
    fn errors_come_back_to_the_caller() {
        let mut env = ThreadEnv::spawn(&native_cartpole()).unwrap();
        assert!(matches!(env.step(&[0.0]), Err(Error::NotReset)), "stepping before reset");
        let err = env.begin_step(&[0.0, 1.0]).unwrap_err();
        assert!(matches!(err, Error::ActionDim { expected: 1, got: 2 }), "{err}");
        env.reset(Some(0)).unwrap();
        env.begin_step(&[0.5]).unwrap();
        assert!(env.begin_step(&[0.5]).is_err(), "a second request before the first is finished");
        assert!(env.finish_reset().is_err(), "finishing the wrong request");
        let bad = EnvConfig { task: "no_such_task".into(), ..EnvConfig::default() };
        assert!(matches!(ThreadEnv::spawn(&bad), Err(Error::UnknownTask { .. })));
    }

    #[test]
    fn several_dm_control_environments_are_refused() {
        let cfg =
            EnvConfig { task: "cartpole-swingup".into(), backend: EnvBackend::Dmc, ..EnvConfig::default() };
        let err = parallel_backend_error(&cfg, 2).expect("refused").to_string();
        assert!(err.contains("--backend native"), "{err}");
        assert!(parallel_backend_error(&cfg, 1).is_none());
        let native = EnvConfig { backend: EnvBackend::Native, ..cfg };
        assert!(parallel_backend_error(&native, 4).is_none());
        assert!(parallel_backend_error(&native_cartpole(), 4).is_none());
    }
}
