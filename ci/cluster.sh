#!/usr/bin/env bash
# The test cluster: a real Kubernetes control plane and a real Argo CD on
# this machine, with no images and no Docker, from the Go module proxy and
# Debian's packages.
#
#   ci/cluster.sh build   build what is missing (versions pinned
#                         in ci/cluster/*/go.mod and below)
#   ci/cluster.sh up      build, then start everything; writes .testenv/kubeconfig
#   ci/cluster.sh down    stop it, remove its state and undo every change
#                         it made to the host
#
# What runs, all on 127.0.0.1 unless said:
#   etcd (Debian)                                   :2379
#   kube-apiserver, -controller-manager, -scheduler  :6443 (k8s v1.34.2)
#   kwok (simulated node kwok-node-0: pods become Ready without running)
#   a real node, shipit-node: kubelet v1.34.2 (API on the bridge address
#     10.87.0.1:10250, never leaving the machine), containerd and runc
#     (Debian), the CNI bridge plugin; it pulls from the test registries
#     (ci/testenv.sh). It is tainted: only pods that tolerate
#     shipit.dev/node=real and choose it (nodeSelector
#     kubernetes.io/hostname: shipit-node) run on it; the rest go to kwok.
#   redis (Debian), argocd-repo-server, argocd-application-controller,
#   argocd-applicationset-controller (argo-cd v3.2.11), kustomize v5.8.1
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
state="$repo/.testenv/cluster"
KV=v1.34.2
KWOKV=v0.8.0
KUSTV=v5.8.1
ARGOV=v3.2.11
# The binaries take long to build cold; like Go's build cache, they are
# kept per version outside the work tree (SHIPIT_CLUSTER_BIN overrides).
sum=$(cat "$repo/ci/cluster/k8s/go.sum" "$repo/ci/cluster/argocd/go.sum" | sha256sum | cut -c1-12)
bin=${SHIPIT_CLUSTER_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/shipit/cluster-$KV-$ARGOV-$KWOKV-$KUSTV-$sum}
export GOTOOLCHAIN=local
export PATH="$bin:$PATH"

# The real node. The bridge's address is the node IP (kubelet refuses a
# loopback one) and the gateway of the pods' subnet; nothing routes it off
# the machine (no forwarding, no NAT).
NODE=shipit-node
NODE_BRIDGE=shipit0
NODE_IP=10.87.0.1
POD_SUBNET=10.87.0.0/16
NODE_TAINT_KEY=shipit.dev/node # NoSchedule: pods that tolerate it and choose the node run there
NODE_TAINT_VALUE=real
# kubelet's cgroups go under this root in every hierarchy (not the host's
# /kubepods), so that down removes exactly what the node made.
CGROUP_ROOT=shipit-node
CNI_BIN=/usr/lib/cni
PAUSE=shipit.test/pause:1 # imported, never pulled (.test never resolves)
node="$state/node"
ctr_() { ctr --address "$node/containerd/containerd.sock" --namespace k8s.io "$@"; }

log() { printf 'cluster: %s\n' "$*" >&2; }

ready() { # name seconds command...: wait until command succeeds
	local name=$1 secs=$2
	shift 2
	for _ in $(seq 1 $((secs * 5))); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.2
	done
	log "$name did not come up in ${secs}s; the end of its log:"
	tail -n 40 "$state/logs/$name.log" >&2 2>/dev/null || true
	return 1
}

run() { # name command...: start in the background, logging, remembering the pid
	local name=$1
	shift
	nohup "$@" >"$state/logs/$name.log" 2>&1 &
	echo $! >"$state/run/$name.pid"
}

packages() {
	local need=()
	command -v etcd >/dev/null || need+=(etcd-server)
	command -v redis-server >/dev/null || need+=(redis-server)
	command -v openssl >/dev/null || need+=(openssl)
	command -v kubectl >/dev/null || need+=(kubernetes-client)
	command -v containerd >/dev/null || need+=(containerd) # 1.6.20, with runc and ctr
	command -v runc >/dev/null || need+=(runc)
	[ -x "$CNI_BIN/bridge" ] || need+=(containernetworking-plugins)
	[ -x /bin/busybox ] || need+=(busybox-static) # the pause image
	if [ ${#need[@]} -gt 0 ]; then
		log "installing ${need[*]} from Debian"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	fi
	# The packages may start services of their own on our ports; stop the
	# services' own processes only. (Debian's `service etcd stop` ends with
	# start-stop-daemon --exec /usr/bin/etcd, which kills every etcd on the
	# machine, whoever started it.)
	stop_service etcd /run/etcd.pid /usr/bin/etcd
	stop_service redis-server /run/redis/redis-server.pid /usr/bin/redis-server
}

stop_service() { # name pidfile exe: systemd's unit, or the pid its init script recorded
	local name=$1 pidfile=$2 exe=$3 pid
	if command -v systemctl >/dev/null && systemctl is-active --quiet "$name" 2>/dev/null; then
		systemctl stop "$name" || true
		return 0
	fi
	[ -n "$pidfile" ] && [ -f "$pidfile" ] || return 0
	pid=$(cat "$pidfile")
	if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$exe" ]; then
		log "stopping the $name service ($pid, from $pidfile)"
		kill "$pid" 2>/dev/null || true
	fi
}

build() {
	mkdir -p "$bin"
	local ld="-s -w -X k8s.io/component-base/version.gitVersion=$KV -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34 -X k8s.io/component-base/version.gitTreeState=clean"
	for c in kube-apiserver kube-controller-manager kube-scheduler kubelet; do
		if [ ! -x "$bin/$c" ]; then
			log "building $c $KV (minutes, cold)"
			(cd "$repo/ci/cluster/k8s" && go build -trimpath -ldflags "$ld" -o "$bin/$c" "k8s.io/kubernetes/cmd/$c")
		fi
	done
	if [ ! -x "$bin/kwok" ]; then
		log "building kwok $KWOKV"
		GOBIN="$bin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOKV"
	fi
	if [ ! -x "$bin/kustomize" ]; then
		log "building kustomize $KUSTV"
		GOBIN="$bin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kustomize/kustomize/v5@$KUSTV"
	fi
	if [ ! -x "$bin/argocd" ]; then
		log "building argocd $ARGOV (minutes, cold)"
		(cd "$repo/ci/cluster/argocd" && go build -trimpath -ldflags "-s -w -X github.com/argoproj/argo-cd/v3/common.version=${ARGOV#v}" -o "$bin/argocd" github.com/argoproj/argo-cd/v3/cmd)
	fi
}

pki() {
	local p="$state/pki"
	[ -f "$p/admin.kubeconfig" ] && return 0
	mkdir -p "$p"
	(
		cd "$p"
		openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -subj "/CN=shipit-test-cluster-ca" -days 30 -out ca.crt 2>/dev/null
		sign() { # name subject extensions
			openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
			printf '%s\n' "$3" >"$1.ext"
			openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
		}
		sign apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,DNS:kubernetes.default.svc,IP:127.0.0.1,IP:10.96.0.1"
		local client="basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
		sign admin "/O=system:masters/CN=shipit-test-admin" "$client"
		# The node's identity: the Node authorizer and NodeRestriction key on it.
		sign node "/O=system:nodes/CN=system:node:$NODE" "$client"
		openssl genrsa -out sa.key 2048 2>/dev/null
		openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
		for u in admin node; do
			export KUBECONFIG="$p/$u.kubeconfig"
			kubectl config set-cluster test --server=https://127.0.0.1:6443 --certificate-authority=ca.crt --embed-certs >/dev/null
			kubectl config set-credentials "$u" --client-certificate="$u.crt" --client-key="$u.key" --embed-certs >/dev/null
			kubectl config set-context test --cluster=test --user="$u" >/dev/null
			kubectl config use-context test >/dev/null
		done
	)
}

# host_save records, once, what the node changes on the host: the sysctls
# kubelet sets (it does unless protectKernelDefaults, which would refuse to
# start on this machine's defaults) and the directories outside $state
# that kubelet, libcni and the shims create where they were missing.
host_save() {
	[ -f "$node/host/sysctl" ] && return 0
	mkdir -p "$node/host"
	local k
	for k in vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes; do
		echo "$k=$(sysctl -n "$k")"
	done >"$node/host/sysctl"
	for k in /var/lib/kubelet /var/lib/cni /var/log/containers /run/containerd; do
		[ -e "$k" ] || echo "$k"
	done >"$node/host/created"
}

# registries writes one containerd hosts.toml per test registry
# (ci/testenv.sh's: plain HTTP, htpasswd over plain HTTP, and the ECR
# stand-in over TLS with its CA); credentials come from imagePullSecrets.
registries() {
	local d="$node/containerd/certs.d" r
	local env="$repo/.testenv/env"
	if [ -z "${SHIPIT_TEST_REGISTRY:-}" ] && [ -f "$env" ]; then
		# shellcheck disable=SC1090
		. "$env"
	fi
	for r in "${SHIPIT_TEST_REGISTRY:-127.0.0.1:5055}" "${SHIPIT_TEST_AUTH_REGISTRY:-127.0.0.1:5056}"; do
		mkdir -p "$d/$r"
		printf 'server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' "$r" "$r" >"$d/$r/hosts.toml"
	done
	if [ -n "${SHIPIT_TEST_ECR_REGISTRY:-}" ] && [ -f "${SHIPIT_TEST_ECR_CA:-}" ]; then
		r=$SHIPIT_TEST_ECR_REGISTRY
		mkdir -p "$d/$r"
		printf 'server = "https://%s"\n\n[host."https://%s"]\n  capabilities = ["pull", "resolve"]\n  ca = "%s"\n' "$r" "$r" "$SHIPIT_TEST_ECR_CA" >"$d/$r/hosts.toml"
	fi
}

containerd_up() {
	local c="$node/containerd"
	mkdir -p "$c" "$node/cni/net.d" "$node/cni/ipam"
	registries
	cat >"$c/config.toml" <<TOML
version = 2
root = "$c/root"
state = "$c/state"
[grpc]
  address = "$c/containerd.sock"
[ttrpc]
  address = "$c/containerd.sock.ttrpc"
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$c/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "$PAUSE"
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    netns_mounts_under_state_dir = true
    # Root here lacks CAP_SYS_RESOURCE: runc cannot write the negative
    # oom_score_adj kubelet asks for ("nsexec: failed to update
    # /proc/self/oom_score_adj: Permission denied"); clamp it instead.
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          Root = "$c/runc"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "$CNI_BIN"
      conf_dir = "$node/cni/net.d"
      max_conf_num = 1
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "$c/certs.d"
TOML
	# The bridge exists before CNI runs: the plugin then adds no gateway
	# address, no forwarding and no NAT rules, and the host reaches the
	# pods (the kubelet's probes) over the connected route.
	if ! ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
		ip link add "$NODE_BRIDGE" type bridge
		echo "$NODE_BRIDGE" >"$node/host/bridge"
		ip addr add "$NODE_IP/${POD_SUBNET#*/}" dev "$NODE_BRIDGE"
		ip link set "$NODE_BRIDGE" up
	fi
	cat >"$node/cni/net.d/10-$NODE.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "$NODE", "plugins": [{
  "type": "bridge", "bridge": "$NODE_BRIDGE", "isGateway": false, "ipMasq": false, "hairpinMode": true,
  "ipam": {"type": "host-local", "dataDir": "$node/cni/ipam", "ranges": [[{"subnet": "$POD_SUBNET", "gateway": "$NODE_IP"}]]}
}]}
JSON
	run containerd containerd --config "$c/config.toml"
	ready containerd 30 sh -c "ctr --address '$c/containerd.sock' plugins ls | grep -q 'cri .* ok'"
	(cd "$repo" && go build -o "$node/pause" ./ci/cluster/pause)
	"$node/pause" --busybox /bin/busybox --ref "$PAUSE" --out "$node/pause.tar"
	ctr_ images import "$node/pause.tar" >/dev/null
}

kubelet_up() {
	local k="$node/kubelet" h
	mkdir -p "$k/pki" "$node/pod-logs"
	# kubelet wants its cgroup root to exist, in every hierarchy.
	for h in /sys/fs/cgroup/*/; do
		if [ -e "${h}cgroup.procs" ]; then mkdir -p "$h$CGROUP_ROOT"; fi
	done
	cat >"$k/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $state/pki/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$node/containerd/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_ROOT
failCgroupV1: false
failSwapOn: false
makeIPTablesUtilChains: false
podLogsDir: $node/pod-logs
serializeImagePulls: false
maxPods: 50
registerWithTaints: [{key: $NODE_TAINT_KEY, value: $NODE_TAINT_VALUE, effect: NoSchedule}]
# The disk is shared with other jobs: no image GC, eviction only when it
# is nearly full (the defaults taint the node at 10-15% free).
evictionHard: {memory.available: 100Mi, nodefs.available: 2%, imagefs.available: 2%, nodefs.inodesFree: 2%, imagefs.inodesFree: 2%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
YAML
	run kubelet kubelet --config="$k/config.yaml" --kubeconfig="$state/pki/node.kubeconfig" \
		--root-dir="$k" --cert-dir="$k/pki" --hostname-override="$NODE" --node-ip="$NODE_IP" \
		--node-labels=shipit.dev/node=real --v=1
	ready kubelet 60 curl -sf http://127.0.0.1:10248/healthz
	ready kubelet 120 sh -c "kubectl get node $NODE -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -q True"
}

node_up() {
	mkdir -p "$node/host"
	host_save
	containerd_up
	kubelet_up
}

# node_down stops kubelet, then every container through containerd (the
# shims exit with their tasks), then containerd; then it removes what the
# node left: processes still in its cgroups, mounts under $state, the
# cgroups, the bridge, libcni's cache entries and the container-log links,
# the directories it created; and it restores the sysctls.
node_down() {
	[ -d "$node" ] || return 0
	stop kubelet
	local id ids=""
	if [ -S "$node/containerd/containerd.sock" ]; then
		ids=$(ctr_ containers ls -q 2>/dev/null || true)
		for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
		sleep 0.5
		for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$id" >/dev/null 2>&1 || true; done
	fi
	stop containerd
	node_processes
	awk -v p="$state/" 'index($2, p) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" || log "could not unmount $m"
	done
	# libcni's cache of the sandboxes' networks (the bridge's, loopback's).
	for id in $ids; do
		find /var/lib/cni/results -maxdepth 1 -name "*-$id-*" -delete 2>/dev/null || true
	done
	node_host_restore
}

# node_processes kills what is left of the node's: processes in its
# cgroups, and shims that name its containerd's socket.
node_processes() {
	local pid d
	for d in /sys/fs/cgroup/*/"$CGROUP_ROOT"; do
		[ -d "$d" ] || continue
		for pid in $(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u); do
			kill -9 "$pid" 2>/dev/null && log "killed $pid, left in the node's cgroups"
		done
	done
	for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $node/containerd/containerd.sock" 2>/dev/null); do
		kill -9 "$pid" 2>/dev/null && log "killed shim $pid"
	done
	return 0
}

node_host_restore() {
	local d k v
	for d in /sys/fs/cgroup/*/"$CGROUP_ROOT"; do
		[ -d "$d" ] || continue
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
			[ -d "$d" ] || break
			sleep 0.2
		done
		if [ -d "$d" ]; then log "could not remove cgroup $d"; fi
	done
	if [ -f "$node/host/bridge" ]; then ip link del "$(cat "$node/host/bridge")" 2>/dev/null || true; fi
	if [ -f "$node/host/sysctl" ]; then
		while IFS== read -r k v; do sysctl -qw "$k=$v" || log "could not restore $k=$v"; done <"$node/host/sysctl"
	fi
	find /var/log/containers -maxdepth 1 -type l -lname "$node/*" -delete 2>/dev/null || true
	find /var/lib/cni/results -maxdepth 1 -name "$NODE-*" -delete 2>/dev/null || true
	if [ -f "$node/host/created" ]; then
		while read -r d; do
			case "$d" in
			/var/lib/kubelet) rm -rf "$d" ;; # kubelet's hard-coded device-plugins directory
			/*) if [ -d "$d" ]; then find "$d" -depth \( -type d -empty -o -type s \) -delete 2>/dev/null || true; fi ;;
			esac
		done <"$node/host/created"
	fi
}

up() {
	if [ "$(id -u)" != 0 ]; then log "run as root"; exit 1; fi
	packages
	build
	if [ -f "$state/run/kube-apiserver.pid" ] && kill -0 "$(cat "$state/run/kube-apiserver.pid")" 2>/dev/null; then
		log "already up: export KUBECONFIG=$repo/.testenv/kubeconfig"
		return 0
	fi
	mkdir -p "$state"/{logs,run,etcd,argocd/tls,argocd/ssh,argocd/gpg/keys,argocd/gpg/source,argocd/tmp}
	pki
	local p="$state/pki"
	cp "$p/admin.kubeconfig" "$repo/.testenv/kubeconfig"
	export KUBECONFIG="$repo/.testenv/kubeconfig"
	local t0=$SECONDS

	run etcd etcd --name test --data-dir "$state/etcd" \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster test=http://127.0.0.1:2380
	ready etcd 30 sh -c 'curl -s http://127.0.0.1:2379/health | grep -q true'

	run kube-apiserver kube-apiserver --etcd-servers=http://127.0.0.1:2379 \
		--bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port=6443 \
		--tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" --client-ca-file="$p/ca.crt" \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
		--service-cluster-ip-range=10.96.0.0/16 --authorization-mode=Node,RBAC \
		--enable-admission-plugins=NodeRestriction \
		--kubelet-client-certificate="$p/admin.crt" --kubelet-client-key="$p/admin.key" \
		--kubelet-preferred-address-types=InternalIP \
		--endpoint-reconciler-type=none --feature-gates=WatchList=false
	ready kube-apiserver 120 sh -c 'kubectl get --raw /readyz | grep -q ok'
	run kube-controller-manager kube-controller-manager --kubeconfig="$KUBECONFIG" \
		--authentication-kubeconfig="$KUBECONFIG" --authorization-kubeconfig="$KUBECONFIG" \
		--bind-address=127.0.0.1 --secure-port=10257 --leader-elect=false \
		--service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" \
		--use-service-account-credentials=false --controllers='*,-nodeipam,-cloud-node-lifecycle'
	run kube-scheduler kube-scheduler --kubeconfig="$KUBECONFIG" \
		--authentication-kubeconfig="$KUBECONFIG" --authorization-kubeconfig="$KUBECONFIG" \
		--bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false
	ready kube-controller-manager 60 sh -c 'curl -sk https://127.0.0.1:10257/healthz | grep -q ok'
	ready kube-scheduler 60 sh -c 'curl -sk https://127.0.0.1:10259/healthz | grep -q ok'

	# kwok plays kwok-node-0: its stages (from its own module) make pods
	# Running and Ready, unless a pod asks otherwise (see the tests).
	local km
	km=$(go mod download -json "sigs.k8s.io/kwok@$KWOKV" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
	# One change to kwok's own stages: a pod whose image tag begins with
	# never-ready- never becomes ready, which is how the tests make a
	# release that cannot become healthy.
	for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
		pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
		echo '---'
		if [ "$f" = pod/fast/pod-ready.yaml ]; then
			awk '!done && /key: .\.status\.phase./ {
				print "    - key: '"'"'.spec.containers.[] | .image | contains(\":never-ready-\")'"'"'"
				print "      operator: '"'"'NotIn'"'"'"
				print "      values: ['"'"'true'"'"']"
				done = 1
			} { print }' "$km/kustomize/stage/$f"
		else
			cat "$km/kustomize/stage/$f"
		fi
	done >"$state/kwok.yaml"
	# No ingress controller runs here: kwok plays one, giving each Ingress
	# an address (Argo CD counts an Ingress Healthy once it has one).
	cat >>"$state/kwok.yaml" <<'EOF'
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: ingress-address
spec:
  resourceRef:
    apiGroup: networking.k8s.io/v1
    kind: Ingress
  selector:
    matchExpressions:
      - key: '.status.loadBalancer.ingress'
        operator: 'DoesNotExist'
  next:
    statusTemplate: |
      loadBalancer:
        ingress:
          - ip: 127.0.0.1
EOF
	# kwok plays only the nodes annotated as its own: the real node is kubelet's.
	run kwok kwok --config="$state/kwok.yaml" --kubeconfig="$KUBECONFIG" \
		--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
		--cidr=10.244.0.1/16 --node-ip=10.0.0.1 --server-address=127.0.0.1:10247
	kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations: {kwok.x-k8s.io/node: fake}
  labels: {kubernetes.io/arch: amd64, kubernetes.io/hostname: kwok-node-0, kubernetes.io/os: linux, type: kwok}
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "250"}
  capacity: {cpu: "32", memory: 256Gi, pods: "250"}
EOF
	ready kwok 60 sh -c "kubectl get node kwok-node-0 -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -q True"
	local tn=$SECONDS
	node_up
	log "node $NODE Ready in $((SECONDS - tn))s"

	run redis redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no
	ready redis 30 sh -c 'redis-cli -h 127.0.0.1 ping | grep -q PONG'
	local am
	am=$(go mod download -json "github.com/argoproj/argo-cd/v3@$ARGOV" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
	kubectl create namespace argocd >/dev/null
	kubectl apply --server-side -f "$am/manifests/crds/application-crd.yaml" -f "$am/manifests/crds/appproject-crd.yaml" \
		-f "$am/manifests/crds/applicationset-crd.yaml" >/dev/null
	kubectl -n argocd apply -k "$am/manifests/base/config" >/dev/null
	kubectl wait --for condition=established --timeout=60s crd/applications.argoproj.io crd/appprojects.argoproj.io crd/applicationsets.argoproj.io >/dev/null
	kubectl apply -f - >/dev/null <<'EOF'
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {name: default, namespace: argocd}
spec:
  sourceRepos: ['*']
  destinations: [{namespace: '*', server: '*'}]
  clusterResourceWhitelist: [{group: '*', kind: '*'}]
EOF
	local a="$state/argocd"
	local env=(ARGOCD_FAKE_IN_CLUSTER=true KUBECONFIG="$KUBECONFIG" ARGOCD_TLS_DATA_PATH="$a/tls"
		ARGOCD_SSH_DATA_PATH="$a/ssh" ARGOCD_GNUPGHOME="$a/gpg/keys" ARGOCD_GPG_DATA_PATH="$a/gpg/source"
		ARGOCD_GPG_ENABLED=false TMPDIR="$a/tmp" PATH="$bin:$PATH")
	run argocd-repo-server env "${env[@]}" ARGOCD_BINARY_NAME=argocd-repo-server "$bin/argocd" \
		--port 8081 --metrics-port 8084 --redis 127.0.0.1:6379 --loglevel warn
	run argocd-application-controller env "${env[@]}" HOSTNAME=argocd-application-controller-0 \
		ARGOCD_BINARY_NAME=argocd-application-controller "$bin/argocd" \
		--namespace argocd --redis 127.0.0.1:6379 --repo-server 127.0.0.1:8081 --metrics-port 8082 \
		--loglevel warn --app-resync 180 --self-heal-timeout-seconds 0
	run argocd-applicationset-controller env "${env[@]}" ARGOCD_BINARY_NAME=argocd-applicationset-controller "$bin/argocd" \
		--namespace argocd --argocd-repo-server 127.0.0.1:8081 --metrics-addr 127.0.0.1:8085 --probe-addr 127.0.0.1:8086 \
		--loglevel warn --enable-leader-election=false
	ready argocd-repo-server 120 curl -sf http://127.0.0.1:8084/healthz
	ready argocd-application-controller 120 curl -sf http://127.0.0.1:8082/healthz
	log "up in $((SECONDS - t0))s: export KUBECONFIG=$repo/.testenv/kubeconfig"
}

stop() { # name: the pid recorded at start: TERM, then KILL after 5 s
	local f="$state/run/$1.pid" pid
	[ -f "$f" ] || return 0
	pid=$(cat "$f")
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$f"
}

down() {
	node_down
	for n in argocd-applicationset-controller argocd-application-controller argocd-repo-server redis kwok \
		kube-scheduler kube-controller-manager kube-apiserver etcd; do
		stop "$n"
	done
	rm -rf "$state" "$repo/.testenv/kubeconfig"
}

case "${1:-}" in
build) build ;;
up) up ;;
down) down ;;
*)
	echo "usage: $0 build|up|down" >&2
	exit 2
	;;
esac
