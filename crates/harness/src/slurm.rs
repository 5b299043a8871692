//! A SLURM job array for a cluster, instead of running the jobs locally: one array task per
//! job, each the same `gradplan bench dmc … --job ID` command a local run would start, then
//! an aggregation job that depends on the array. SLURM schedules; we only write the scripts.

use crate::protocol::Job;
use crate::{write_atomic, Error, Result};
use std::path::{Path, PathBuf};

/// Cluster settings for the generated scripts.
#[derive(Debug, Clone, Default)]
pub struct SlurmOptions {
    /// `--partition`, if the cluster needs one.
    pub partition: Option<String>,
    /// `--time` per job, e.g. `24:00:00`.
    pub time: String,
    /// GPUs per job (`--gres=gpu:N`); 0 for CPU jobs.
    pub gpus: usize,
    pub cpus_per_task: usize,
    /// At most this many array tasks at once (`%N`); 0 for no limit.
    pub max_parallel: usize,
}

/// Quotes a word for a POSIX shell.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c)) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

pub fn command_line(argv: &[String]) -> String {
    argv.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ")
}

/// The files written by [`write_scripts`].
#[derive(Debug, Clone)]
pub struct SlurmScripts {
    pub jobs: PathBuf,
    pub array: PathBuf,
    pub aggregate: PathBuf,
    /// How to submit both, dependency included.
    pub submit: String,
}

/// Writes `slurm/jobs.txt` (one command per line: line i+1 is array task i),
/// `slurm/array.sbatch` and `slurm/aggregate.sbatch` under `out`.
///
/// `job_argv(job)` is the command that runs one job; `aggregate_argv` the one that writes
/// the tables once every job is done (the same harness command without `--job`).
pub fn write_scripts(
    out: &Path,
    jobs: &[Job],
    job_argv: impl Fn(&Job) -> Vec<String>,
    aggregate_argv: &[String],
    opts: &SlurmOptions,
) -> Result<SlurmScripts> {
    if jobs.is_empty() {
        return Err(Error::Usage("no jobs to write a SLURM array for (every job is complete)".into()));
    }
    let dir = out.join("slurm");
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
    let logs = out.join("logs");
    std::fs::create_dir_all(&logs).map_err(|source| Error::Io { path: logs.clone(), source })?;
    let lines: Vec<String> = jobs.iter().map(|j| command_line(&job_argv(j))).collect();
    let jobs_file = dir.join("jobs.txt");
    write_atomic(&jobs_file, (lines.join("\n") + "\n").as_bytes())?;
    let mut header = String::from("#!/bin/bash\n");
    let partition = opts.partition.as_ref().map(|p| format!("#SBATCH --partition={p}\n")).unwrap_or_default();
    let gres = if opts.gpus > 0 { format!("#SBATCH --gres=gpu:{}\n", opts.gpus) } else { String::new() };
    let limit = if opts.max_parallel > 0 { format!("%{}", opts.max_parallel) } else { String::new() };
    header += &format!(
        "#SBATCH --job-name=gradplan-dmc\n#SBATCH --array=0-{}{limit}\n#SBATCH --cpus-per-task={}\n#SBATCH \
         --time={}\n{partition}{gres}#SBATCH --output={}/slurm-%A_%a.log\n",
        jobs.len() - 1,
        opts.cpus_per_task.max(1),
        opts.time,
        shell_quote(&logs.display().to_string()),
    );
    let array = format!(
        "{header}# One gradplan job per array task: line SLURM_ARRAY_TASK_ID+1 of jobs.txt. A job that was \
         interrupted resumes from its last checkpoint when resubmitted; a complete one returns at once.\nset -euo \
         pipefail\ncmd=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" {})\necho \"$cmd\"\neval \"$cmd\"\n",
        shell_quote(&jobs_file.display().to_string())
    );
    let array_file = dir.join("array.sbatch");
    write_atomic(&array_file, array.as_bytes())?;
    let aggregate = format!(
        "#!/bin/bash\n#SBATCH --job-name=gradplan-dmc-tables\n#SBATCH --cpus-per-task=1\n#SBATCH \
         --time=00:30:00\n{partition}#SBATCH --output={}/slurm-aggregate-%j.log\n# Writes results.csv, \
         results.md and the plots once the array is done (it runs no job that is complete).\nset -euo \
         pipefail\n{} --aggregate-only\n",
        shell_quote(&logs.display().to_string()),
        command_line(aggregate_argv)
    );
    let aggregate_file = dir.join("aggregate.sbatch");
    write_atomic(&aggregate_file, aggregate.as_bytes())?;
    let submit = format!(
        "jid=$(sbatch --parsable {}) && sbatch --dependency=afterany:$jid {}",
        shell_quote(&array_file.display().to_string()),
        shell_quote(&aggregate_file.display().to_string())
    );
    Ok(SlurmScripts { jobs: jobs_file, array: array_file, aggregate: aggregate_file, submit })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Protocol, Scale, Table};

    #[test]
    fn quoting_survives_the_shell() {
        assert_eq!(shell_quote("env.task=\"x\""), "'env.task=\"x\"'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("--seeds"), "--seeds");
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("printf '%s\\n' {}", command_line(&["a b".into(), "it's".into(), "x=\"y\"".into()])))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b\nit's\nx=\"y\"\n");
    }

    #[test]
    fn scripts_have_one_array_task_per_job_and_parse() {
        let dir = tempfile::tempdir().unwrap();
        let p = Protocol::new(Table::One, Scale::Paper, vec![], vec![], vec![], vec![]).unwrap();
        let jobs = p.jobs();
        let opts = SlurmOptions {
            time: "24:00:00".into(),
            gpus: 1,
            cpus_per_task: 8,
            max_parallel: 10,
            ..Default::default()
        };
        let s = write_scripts(
            dir.path(),
            &jobs,
            |j| vec!["gradplan".into(), "bench".into(), "dmc".into(), "--job".into(), j.id.clone()],
            &["gradplan".into(), "bench".into(), "dmc".into()],
            &opts,
        )
        .unwrap();
        let lines = std::fs::read_to_string(&s.jobs).unwrap();
        assert_eq!(lines.lines().count(), 30);
        assert!(lines.lines().next().unwrap().ends_with("--job t1-cartpole-swingup-grad-mpc-paper-s0"));
        let array = std::fs::read_to_string(&s.array).unwrap();
        assert!(array.contains("#SBATCH --array=0-29%10"));
        assert!(array.contains("#SBATCH --gres=gpu:1"));
        for f in [&s.array, &s.aggregate] {
            let ok = std::process::Command::new("bash").arg("-n").arg(f).status().unwrap();
            assert!(ok.success(), "{} is not valid bash", f.display());
        }
        assert!(s.submit.contains("--dependency=afterany:$jid"));
    }
}
