//! The control plane fixture itself: the exact release, and a clean stop.

use std::path::Path;

use homeostat_test_support::{ControlPlane, assets::kubernetes_version};

#[tokio::test]
async fn control_plane_runs_the_pinned_release_and_stops_on_drop() {
    let plane = ControlPlane::start()
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    let client = plane.client().await.expect("client");
    let version = client.apiserver_version().await.expect("/version");
    assert_eq!(version.git_version, kubernetes_version());

    let pids = plane.pids();
    let dir = plane.dir().to_owned();
    for pid in pids {
        assert!(
            Path::new(&format!("/proc/{pid}")).exists(),
            "{pid} should run"
        );
    }
    drop(plane);
    // Drop kills and reaps both processes before it returns.
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "{pid} still running"
        );
    }
    assert!(!dir.exists(), "{} not removed", dir.display());
}
