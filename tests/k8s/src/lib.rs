//! A real Kubernetes control plane for tests, on 127.0.0.0/8 only.
//!
//! * `bins` — the reference binaries built by `scripts/k8s-bins.sh` (kube-apiserver,
//!   kube-controller-manager, kubectl, helm, etcd 3.6).
//! * `certs` — the rig's own CA and serving/client certificates (rcgen).
//! * `control_plane` — oxcd (or etcd) + kube-apiserver + kube-controller-manager, an admin
//!   kubeconfig.
//! * `kubelet` — the process kubelet: a Node whose pods run as local processes, each on its
//!   own loopback address, with volumes as directories and names resolvable.
