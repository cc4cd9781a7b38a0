package scaffold

const shipitYAML = `# shipit: https://github.com/shipit-dev/shipit (see its README for every key).
# Edit registry to your ECR registry (or any OCI registry).
registry: {{.Registry}}
cache:
  export: registry          # CI runners share a BuildKit cache at <repository>:buildcache
images:
{{- range .Images}}
  {{.Name}}:
    context: {{.Context}}
    dockerfile: {{.Dockerfile}}
{{- if and (eq $.Kind "rails") (eq .Name "app")}}
    target: runtime
    # Private gems and the master key reach the build only as secret mounts:
    # secrets:
    #   - {id: bundle_token, env: BUNDLE_GITHUB__COM}
    #   - {id: rails_master_key, src: config/master.key}
    # ssh: [default]
{{- end}}
{{- end}}
deploy:
  repo: .
  branch: main
  overlays: [k8s/overlays/staging, k8s/overlays/production]
{{- if .ImageUpdater}}
  mode: image-updater       # Argo CD Image Updater writes the pins (k8s/argocd/image-updater.yaml)
{{- end}}
`

// dockerignore keeps what Rails' own .dockerignore keeps out of the
// build context (secrets first: an image a developer pushes must not hold
// config/master.key or an .env file), and shipit's own state.
const dockerignore = `# Secrets never go into an image.
/.env*
!/.env.example
/config/master.key
/config/credentials/*.key

# Git, shipit's build state and the deploy manifests.
/.git/
/.gitignore
/.shipit/
/k8s/

# Logs, temporary files, uploads and build output.
/log/*
/tmp/*
!/log/.keep
!/tmp/.keep
/tmp/pids/*
!/tmp/pids/
!/tmp/pids/.keep
/storage/*
!/storage/.keep
/tmp/storage/*
!/tmp/storage/
!/tmp/storage/.keep
/public/assets
/node_modules/
/app/assets/builds/*
!/app/assets/builds/.keep

# CI and editor files.
/.github/
/.dockerignore
`

const baseKustomization = `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deployment.yaml
  - service.yaml
  - migrate-job.yaml
`

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{.Name}}
  labels: {app.kubernetes.io/name: {{.Name}}}
spec:
  replicas: 2
  selector:
    matchLabels: {app.kubernetes.io/name: {{.Name}}}
  template:
    metadata:
      labels: {app.kubernetes.io/name: {{.Name}}}
    spec:
{{- if eq .Kind "rails"}}
      # nginx serves the assets of the same release: copied from the app image.
      initContainers:
        - name: assets
          image: app
          command: [cp, -r, /app/public/., /assets/]
          volumeMounts: [{name: assets, mountPath: /assets}]
{{- end}}
      containers:
        - name: app
          image: app
{{- if eq .Kind "rails"}}
          args: [server]
{{- end}}
          ports: [{name: app, containerPort: {{.AppPort}}}]
          readinessProbe:
            tcpSocket: {port: app}
{{- if eq .Kind "rails"}}
        - name: nginx
          image: nginx
          ports: [{name: http, containerPort: 8080}]
          volumeMounts: [{name: assets, mountPath: /usr/share/nginx/html}]
      volumes:
        - name: assets
          emptyDir: {}
{{- end}}
`

const service = `apiVersion: v1
kind: Service
metadata:
  name: {{.Name}}
spec:
  selector: {app.kubernetes.io/name: {{.Name}}}
  ports:
    - name: http
      port: 80
      targetPort: {{if eq .Kind "rails"}}http{{else}}app{{end}}
`

const migrateJob = `# The migration runs from the app image of the release.
apiVersion: batch/v1
kind: Job
metadata:
  name: {{.Name}}-migrate
  annotations:
    argocd.argoproj.io/hook: PreSync
    argocd.argoproj.io/hook-delete-policy: BeforeHookCreation
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: app
          args: [migrate]   # the entrypoint's migration command; edit for your app
`

const overlay = `# {{.Env}}: Argo CD syncs this directory (k8s/argocd/{{.Env}}.yaml).
# shipit release moves the image pins below; shipit pin rolls them back.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: {{.Name}}-{{.Env}}
resources:
  - ../../base
images:
{{- range .Images}}
  - name: {{.Name}}
    newName: {{$.Registry}}/{{.Name}}
{{- end}}
`

const application = `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: {{.Name}}-{{.Env}}
  namespace: argocd
spec:
  project: default
  source:
    repoURL: {{.RepoURL}}
    targetRevision: main
    path: k8s/overlays/{{.Env}}
  destination:
    server: https://kubernetes.default.svc
    namespace: {{.Name}}-{{.Env}}
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [CreateNamespace=true]
`

const imageUpdater = `# Argo CD Image Updater for {{.Name}}-production: it picks shipit's newest
# release tag (alphabetical) and writes it to the overlay's kustomization.
# shipit updater-config prints this again, with the annotations form.
apiVersion: argocd-image-updater.argoproj.io/v1alpha1
kind: ImageUpdater
metadata:
  name: {{.Name}}-production
  namespace: argocd
spec:
  writeBackConfig:
    method: git
    gitConfig:
      branch: main
      writeBackTarget: "kustomization:k8s/overlays/production"
  applicationRefs:
    - namePattern: "{{.Name}}-production"
      commonUpdateSettings:
        updateStrategy: alphabetical
        allowTags: "regexp:^[0-9]{8}-[0-9]{6}-[0-9a-f]{7}$"
      images:
{{- range .Images}}
        - alias: {{.Name}}
          imageName: {{$.Registry}}/{{.Name}}
          manifestTargets:
            kustomize:
              name: {{.Name}}
{{- end}}
`
