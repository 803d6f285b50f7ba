//! A real Envoy loading the release `traffic_split.wasm`: started on free ports in a private
//! folder, ready once its admin answers `/ready`, stopped (and its folder removed) on drop.

use super::admin::Admin;
use super::config::{EnvoyConfig, V2_ABORT_PERCENT_KEY};
use super::discovery::{self, ECDS_APPLIED, ECDS_REJECTED};
use super::files::native_module_dir;
use super::files::{envoy_binary, repo_root};
use super::http;
use super::module::Module;
use super::wait::wait_for;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Envoy-based tests take the whole machine (2 cores) and 2 ms deadlines: one at a time.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A private folder for one Envoy: its config, log and admin address.
fn private_dir() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "traffic-split-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create a temporary folder");
    dir
}

/// How long a config update may take to be accepted or rejected.
const UPDATE_WITHIN: Duration = Duration::from_secs(30);

/// A running Envoy; stopped (and its folder removed) on drop.
pub struct Envoy {
    child: Child,
    pub admin: Admin,
    /// The front listener, where the filter runs.
    pub front: SocketAddr,
    dir: PathBuf,
}

/// Envoy exited before it was ready; `log` holds what it printed.
#[derive(Debug)]
pub struct StartFailure {
    pub exit_code: Option<i32>,
    pub log: String,
}

impl Envoy {
    pub fn start(config: EnvoyConfig) -> Envoy {
        match Envoy::try_start(config) {
            Ok(envoy) => envoy,
            Err(failure) => panic!("Envoy did not start:\n{}", failure.log),
        }
    }

    /// Starts Envoy and waits until its admin says it is ready, or until it exits.
    pub fn try_start(config: EnvoyConfig) -> Result<Envoy, StartFailure> {
        let dir = private_dir();
        let tag = dir
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("ts")
            .to_string();
        let config = config.isolated(&tag, &dir);
        let config_path = dir.join("envoy.yaml");
        fs::write(
            &config_path,
            serde_yaml::to_string(&config.document).expect("write YAML"),
        )
        .expect("write the Envoy config");
        let admin_path = dir.join("admin-address");
        // Envoy's timers read CLOCK_MONOTONIC_COARSE by default, which steps every few ms on
        // some kernels, so a 2 ms deadline fires anywhere from at once to a tick late
        // (docs/metrics.md, "Deadlines"). The tests judge the deadline the filter sets, as
        // `make run` shows it, with the precise clock.
        let child = Command::new(envoy_binary())
            .env("EVENT_PRECISE_TIMER", "1")
            .env("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", native_module_dir())
            .arg("--config-path")
            .arg(&config_path)
            .args(["--concurrency", &config.concurrency.to_string()])
            .args(["--disable-hot-restart", "--log-level", "info"])
            .arg("--admin-address-path")
            .arg(&admin_path)
            .arg("--log-path")
            .arg(dir.join("envoy.log"))
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("stderr.log")).expect("create stderr log"))
            .spawn()
            .expect("start Envoy");
        let mut starting = Starting {
            child: Some(child),
            dir: dir.clone(),
        };
        let ready = wait_for(
            "Envoy was not ready",
            Duration::from_secs(60),
            || read_logs(&dir),
            || {
                let exited = starting
                    .child
                    .as_mut()
                    .and_then(|child| child.try_wait().expect("poll Envoy"));
                if let Some(status) = exited {
                    return Some(Err(status.code()));
                }
                let admin = Admin {
                    address: read_admin_address(&admin_path)?,
                };
                admin.is_ready().then_some(Ok(admin))
            },
        );
        let admin = match ready {
            Ok(admin) => admin,
            Err(exit_code) => {
                starting.child = None;
                return Err(StartFailure {
                    exit_code,
                    log: read_logs(&dir),
                });
            }
        };
        let front = admin.listener("front");
        let warm_up = admin.listener("warm-up");
        for cluster in config.cluster_names() {
            let _ = http::Connection::open(warm_up).and_then(|mut connection| {
                connection.request("GET", "/", &[("x-warm-up-cluster", &cluster)])
            });
        }
        let child = starting.child.take().expect("child is running");
        Ok(Envoy {
            child,
            admin,
            front,
            dir,
        })
    }

    /// Hands the running filter a new plugin configuration through LDS (the Envoy must have
    /// been started with [`EnvoyConfig::front_listener_from_lds`]) and waits until Envoy has
    /// accepted or rejected it. Returns whether Envoy accepted it.
    pub fn reconfigure(&self, plugin_config: &str) -> bool {
        let counter = |name: &str| self.admin.metrics().count(name, &[]);
        let accepted = counter("envoy_listener_manager_lds_update_success");
        let rejected = counter("envoy_listener_manager_lds_update_rejected");
        discovery::update_lds(&self.dir, plugin_config);
        let applied = self.wait_for_update("the LDS update", || {
            if counter("envoy_listener_manager_lds_update_rejected") > rejected {
                return Some(false);
            }
            (counter("envoy_listener_manager_lds_update_success") > accepted).then_some(true)
        });
        if applied {
            // An accepted listener serves once it has finished warming.
            self.wait_for_update("the new listener to finish warming", || {
                (counter("envoy_listener_manager_total_listeners_warming") == 0).then_some(())
            });
        }
        applied
    }

    /// Hands the running filter a new plugin configuration through ECDS (the Envoy must have
    /// been started with [`EnvoyConfig::front_filter_from_ecds`]) and waits until Envoy has
    /// applied or rejected it. Returns whether Envoy applied it.
    pub fn reconfigure_filter(&self, plugin_config: &str) -> bool {
        let counter = |name: &str| self.admin.stat(name).unwrap_or(0);
        let applied = counter(ECDS_APPLIED);
        let rejected = counter(ECDS_REJECTED);
        discovery::update_ecds(&self.dir, plugin_config);
        self.wait_for_update("the ECDS update", || {
            if counter(ECDS_REJECTED) > rejected {
                return Some(false);
            }
            (counter(ECDS_APPLIED) > applied).then_some(true)
        })
    }

    fn wait_for_update<T>(&self, what: &str, attempt: impl FnMut() -> Option<T>) -> T {
        wait_for(
            &format!("Envoy did not take {what}"),
            UPDATE_WITHIN,
            || self.log(),
            attempt,
        )
    }

    /// Makes v2's upstream answer every request with 503 (`true`), or serve again (`false`);
    /// needs [`EnvoyConfig::with_v2_failure_switch`].
    pub fn set_v2_failing(&self, failing: bool) {
        let percent = if failing { "100" } else { "0" };
        self.admin.set_runtime(V2_ABORT_PERCENT_KEY, percent);
    }

    /// Everything Envoy logged so far (Envoy writes its log file in batches: see
    /// [`Envoy::stop`] for all of it).
    pub fn log(&self) -> String {
        read_logs(&self.dir)
    }

    /// Stops Envoy as an operator would (SIGTERM), so that it flushes its log, and returns
    /// everything it logged.
    pub fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        read_logs(&self.dir)
    }

    /// Asserts that the filter's VM never failed: Envoy's Wasm failure counters are 0 and its
    /// log holds no failed call into the module. The counters move only under
    /// `failure_policy: FAIL_RELOAD` (a failed VM is reloaded and counted; under the other
    /// policies Envoy counts nothing), so tests that need this run with it.
    pub fn assert_vm_never_failed(&self) {
        if Module::under_test() == Module::Native {
            // The native module has no VM: a panic it caught is what would have been a trap.
            let log = self.log();
            assert!(
                !log.contains("traffic-split: panic in"),
                "the module panicked:\n{log}"
            );
            return;
        }
        for counter in [
            "vm_reload_backoff",
            "vm_reload_success",
            "vm_reload_failure",
        ] {
            let name = format!("wasm.traffic-split.{counter}");
            assert_eq!(self.admin.stat(&name), Some(0), "{name}");
        }
        let log = self.log();
        assert!(
            !log.contains("failed: Uncaught"),
            "a call into the VM failed:\n{log}"
        );
    }

    /// The address of a listener by name (see [`EnvoyConfig::with_another_front`]).
    pub fn listener(&self, name: &str) -> SocketAddr {
        self.admin.listener(name)
    }

    /// A new connection to the front listener.
    pub fn connect(&self) -> http::Connection {
        http::Connection::open(self.front).expect("connect to Envoy's front listener")
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        stop_and_clean(&mut self.child, &self.dir);
    }
}

/// An Envoy that has not yet become ready: killed if the harness gives up on it.
struct Starting {
    child: Option<Child>,
    dir: PathBuf,
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            stop_and_clean(child, &self.dir);
        }
    }
}

/// Kills a child process and removes its private folder.
pub fn stop_and_clean(child: &mut Child, dir: &Path) {
    let _ = child.kill();
    let _ = child.wait();
    let _ = fs::remove_dir_all(dir);
}

fn read_logs(dir: &Path) -> String {
    let log = fs::read_to_string(dir.join("envoy.log")).unwrap_or_default();
    let stderr = fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
    format!("{log}{stderr}")
}

fn read_admin_address(path: &Path) -> Option<SocketAddr> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}
