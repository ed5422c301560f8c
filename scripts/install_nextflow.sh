#!/usr/bin/env bash
# Install a pinned, project-local, offline Nextflow from Maven Central.
#
#   scripts/install_nextflow.sh          # install (no-op if already installed)
#   .tools/bin/nextflow -version         # use it
#
# What it does:
#   1. generates a one-dependency pom (io.nextflow:nextflow:$NXF_VERSION) in a
#      temp dir and runs `mvn dependency:copy-dependencies` with a project-local
#      Maven repository (.tools/m2), so ~/.m2 is neither needed nor touched;
#   2. copies every runtime jar into .tools/nextflow/<version>/lib/;
#   3. writes the launchers .tools/bin/nextflow-<version> and .tools/bin/nextflow
#      (= the version installed last) -- plain `java -cp lib/*
#      nextflow.cli.Launcher`, no capsule, no self-update, no plugin download;
#   4. checks that `nextflow -version` reports the pinned version and writes a
#      stamp file. A second run with the stamp present exits 0 immediately
#      (if only the launcher points elsewhere, it is rewritten, no download).
#
# Environment overrides (all optional):
#   NXF_VERSION       Nextflow release to install (default: the pin below);
#                     e.g. NXF_VERSION=25.04.0 gives `nextflow-25.04.0 lint`
#   NXF_INSTALL_FORCE=1  re-resolve and rewrite even if the stamp is present
#   MVN               maven command (default: mvn)
#   MAVEN_REPO_URL    remote repository (default: Maven Central)
# See scripts/NEXTFLOW_NOTES.md for why this version was chosen.
set -euo pipefail

NXF_VERSION="${NXF_VERSION:-24.10.0}"
# maven-dependency-plugin pinned for reproducibility
DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
NXF_MAIN_CLASS="nextflow.cli.Launcher"
MVN="${MVN:-mvn}"
MAVEN_REPO_URL="${MAVEN_REPO_URL:-https://repo.maven.apache.org/maven2}"

# Per-version fix-ups for artifacts Maven Central lacks (see NEXTFLOW_NOTES.md).
# Only the default (24.10.0) resolves unmodified; the others are opt-in
# "hybrids" that were tested here but are not an upstream-released jar set.
#   NXF_PINS:     groupId:artifactId:version forced via dependencyManagement
#   NXF_EXCLUDES: groupId:artifactId dropped from the tree
NXF_PINS=()
NXF_EXCLUDES=()
case "$NXF_VERSION" in
  24.10.0) ;;  # clean: every jar of the release is on Maven Central
  25.04.0)     # nf-commons/nf-httpfs 25.04.0 and io.seqera:lib-trace are not on Central
    NXF_PINS=(io.nextflow:nf-commons:25.04.4 io.nextflow:nf-httpfs:25.04.4)
    NXF_EXCLUDES=(io.seqera:lib-trace) ;;
  24.10.5|24.10.4)  # nf-httpfs 24.10.4/5 are not on Central
    NXF_PINS=(io.nextflow:nf-httpfs:24.10.0) ;;
  *) ;;
esac

log() { printf '[install_nextflow] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
TOOLS="$REPO_ROOT/.tools"
M2="$TOOLS/m2"
DEST="$TOOLS/nextflow/$NXF_VERSION"
LIB="$DEST/lib"
STAMP="$DEST/.installed"
LAUNCHER="$TOOLS/bin/nextflow"                      # last installed version
LAUNCHER_VER="$TOOLS/bin/nextflow-$NXF_VERSION"      # this version, always

launcher_is_current() {
  [[ -x "$1" ]] && grep -qx "NXF_BUNDLED_VERSION='$NXF_VERSION'" "$1"
}

# ---------------------------------------------------------------- idempotency
if [[ "${NXF_INSTALL_FORCE:-0}" != 1 && -f "$STAMP" && -f "$LIB/nextflow-$NXF_VERSION.jar" ]] \
   && launcher_is_current "$LAUNCHER" && launcher_is_current "$LAUNCHER_VER"; then
  log "Nextflow $NXF_VERSION already installed ($LAUNCHER); nothing to do"
  exit 0
fi

command -v java >/dev/null 2>&1 || [[ -n "${NXF_JAVA_HOME:-}${JAVA_HOME:-}" ]] \
  || die "java not found (need Java 17+; set JAVA_HOME or NXF_JAVA_HOME)"
command -v "$MVN" >/dev/null 2>&1 || die "'$MVN' not found (apt-get install maven)"

# ------------------------------------------------------------- resolve jars
WORK=''
trap 'rm -rf "${WORK:-}" "$LAUNCHER.tmp" "$LAUNCHER_VER.tmp"' EXIT
mkdir -p "$TOOLS/bin" "$TOOLS/nextflow"
if [[ "${NXF_INSTALL_FORCE:-0}" != 1 && -f "$STAMP" && -f "$LIB/nextflow-$NXF_VERSION.jar" ]]; then
  log "jars for $NXF_VERSION already present in $LIB; only (re)writing the launcher"
  njars=$(find "$LIB" -name '*.jar' | wc -l)
else
WORK="$(mktemp -d "${TMPDIR:-/tmp}/nxf-install.XXXXXX")"

pins_xml=''
for p in "${NXF_PINS[@]+"${NXF_PINS[@]}"}"; do
  IFS=: read -r g a v <<<"$p"
  pins_xml+="<dependency><groupId>$g</groupId><artifactId>$a</artifactId><version>$v</version></dependency>"
  log "fix-up: pinning $p"
done
excl_xml=''
for e in "${NXF_EXCLUDES[@]+"${NXF_EXCLUDES[@]}"}"; do
  IFS=: read -r g a <<<"$e"
  excl_xml+="<exclusion><groupId>$g</groupId><artifactId>$a</artifactId></exclusion>"
  log "fix-up: excluding $e"
done

cat >"$WORK/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.scfan</groupId>
  <artifactId>nextflow-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <repositories>
    <repository>
      <id>central</id>
      <url>$MAVEN_REPO_URL</url>
      <snapshots><enabled>false</enabled></snapshots>
    </repository>
  </repositories>
  <dependencyManagement><dependencies>$pins_xml</dependencies></dependencyManagement>
  <dependencies>
    <dependency>
      <groupId>io.nextflow</groupId>
      <artifactId>nextflow</artifactId>
      <version>$NXF_VERSION</version>
      <exclusions>$excl_xml</exclusions>
    </dependency>
  </dependencies>
</project>
EOF

mkdir -p "$M2"
log "resolving io.nextflow:nextflow:$NXF_VERSION and its runtime dependencies from $MAVEN_REPO_URL"
log "  (maven repo: $M2)"
if ! "$MVN" -B -q -f "$WORK/pom.xml" \
      -Dmaven.repo.local="$M2" \
      "$DEP_PLUGIN:copy-dependencies" \
      -DincludeScope=runtime \
      -DoutputDirectory="$WORK/lib" >"$WORK/mvn.log" 2>&1; then
  grep -E 'ERROR|Could not' "$WORK/mvn.log" | head -20 >&2 || true
  die "maven could not resolve Nextflow $NXF_VERSION (see NEXTFLOW_NOTES.md)"
fi
njars=$(find "$WORK/lib" -name '*.jar' | wc -l)
[[ -f "$WORK/lib/nextflow-$NXF_VERSION.jar" ]] || die "nextflow-$NXF_VERSION.jar missing from resolved set"
log "resolved $njars jars"

rm -rf "$DEST.tmp"
mkdir -p "$DEST.tmp"
mv "$WORK/lib" "$DEST.tmp/lib"
rm -rf "$DEST"
mv "$DEST.tmp" "$DEST"
fi

# ---------------------------------------------------------------- launcher
log "writing launchers $LAUNCHER_VER and $LAUNCHER"
cat >"$LAUNCHER.tmp" <<'LAUNCHER_HEAD'
#!/usr/bin/env bash
# Project-local Nextflow launcher, generated by scripts/install_nextflow.sh.
# Runs the jars in ../nextflow/<version>/lib directly (no capsule, no download,
# no self-update, no plugins). Works from any cwd and via symlinks.
#
# Environment honoured: NXF_HOME (default <repo>/.tools/nxf-home),
#   NXF_OFFLINE (default true), NXF_JAVA_HOME / JAVA_CMD / JAVA_HOME / PATH
#   (Java 11..24 for 24.10, 17..24 for 25.x; NXF_SKIP_JAVA_CHECK=1 to bypass),
#   NXF_OPTS (extra JVM options), NXF_JVM_ARGS, NXF_TEMP, NXF_CLASSPATH,
#   NXF_CLI_OPTS (appended to the command line).
# Launcher options (before the command): -D<prop>=<val> (JVM system property),
#   -bg (run in background, pid in $NXF_PID_FILE or .nextflow.pid).
set -euo pipefail
LAUNCHER_HEAD
cat >>"$LAUNCHER.tmp" <<EOF
NXF_BUNDLED_VERSION='$NXF_VERSION'
NXF_MAIN_CLASS='$NXF_MAIN_CLASS'
EOF
cat >>"$LAUNCHER.tmp" <<'LAUNCHER_BODY'

self="${BASH_SOURCE[0]}"
while [[ -L "$self" ]]; do
  target="$(readlink "$self")"
  [[ "$target" == /* ]] || target="$(dirname "$self")/$target"
  self="$target"
done
TOOLS_DIR="$(cd "$(dirname "$self")/.." && pwd)"
NXF_LIB="$TOOLS_DIR/nextflow/$NXF_BUNDLED_VERSION/lib"
if [[ ! -f "$NXF_LIB/nextflow-$NXF_BUNDLED_VERSION.jar" ]]; then
  echo "nextflow: $NXF_LIB is missing -- run scripts/install_nextflow.sh" >&2
  exit 1
fi

# --- environment: offline, project-local home, no update check, no plugins
unset JAVA_TOOL_OPTIONS NXF_VER
export NXF_HOME="${NXF_HOME:-$TOOLS_DIR/nxf-home}"
export NXF_OFFLINE="${NXF_OFFLINE:-true}"
export NXF_DISABLE_CHECK_LATEST=true
export NXF_PLUGINS_DEFAULT="${NXF_PLUGINS_DEFAULT:-false}"
export NXF_PLUGINS_DIR="${NXF_PLUGINS_DIR:-$NXF_HOME/plugins}"
export NXF_CLI="$0 $*"
export NXF_ORG="${NXF_ORG:-nextflow-io}"
mkdir -p "$NXF_HOME"
[[ -n "${NXF_CLASSPATH:-}" ]] && export NXF_CLASSPATH
COLUMNS="${COLUMNS:-$( (tty -s && tput cols) 2>/dev/null || true)}"
[[ -n "$COLUMNS" ]] && export COLUMNS

# --- java
if [[ -n "${NXF_JAVA_HOME:-}" ]]; then JAVA_CMD="$NXF_JAVA_HOME/bin/java"
elif [[ -n "${JAVA_CMD:-}" && -x "${JAVA_CMD}" ]]; then :
elif [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then JAVA_CMD="$JAVA_HOME/bin/java"
else JAVA_CMD="$(command -v java || true)"
fi
[[ -n "$JAVA_CMD" && -x "$JAVA_CMD" ]] || { echo "nextflow: java not found (Java 17+ required)" >&2; exit 1; }
export JAVA_CMD
# Java version check without starting a JVM (reads <java home>/release).
# Groovy 4.0.2x inside Nextflow 24.10/25.04 cannot compile scripts on Java 25+
# ("Unsupported class file major version 69"); Nextflow 25.x needs Java 17+.
if [[ "${NXF_SKIP_JAVA_CHECK:-}" != 1 ]]; then
  jrel="$(dirname "$(dirname "$(readlink -f "$JAVA_CMD" 2>/dev/null || echo "$JAVA_CMD")")")/release"
  if [[ -f "$jrel" ]]; then
    jver="$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$jrel")"
    jmin=11; [[ "$NXF_BUNDLED_VERSION" == 2[5-9].* ]] && jmin=17
    if [[ -n "$jver" ]] && (( jver < jmin || jver > 24 )); then
      echo "nextflow: Nextflow $NXF_BUNDLED_VERSION needs Java $jmin..24 but $JAVA_CMD is Java $jver;" \
           "set NXF_JAVA_HOME (e.g. /usr/lib/jvm/java-17-openjdk-amd64) or NXF_SKIP_JAVA_CHECK=1" >&2
      exit 1
    fi
  fi
fi

# --- launcher-level options (same semantics as the official launcher)
bg=''
cmd=''
declare -a jvmopts=()
declare -a args=("$@")
declare -a nxf_commands=(auth clean clone config console drop fs help history info inspect kuberun launch lineage lint list log ls node plugin pull run secrets self-update view)
if [[ -n "${NXF_CLI_OPTS:-}" ]]; then read -r -a _split <<<"$NXF_CLI_OPTS"; args+=("${_split[@]}"); fi
for a in "$@"; do
  case "$a" in
    -D*) [[ -z "$cmd" ]] && jvmopts+=("$a") ;;
    -bg) bg=1 ;;
    -self-update|self-update|-download)
      [[ -z "$cmd" ]] && { echo "nextflow: '$a' is disabled in this offline install (re-run scripts/install_nextflow.sh with another NXF_VERSION)" >&2; exit 1; } ;;
    -*) ;;
    *) [[ -z "$cmd" && " ${nxf_commands[*]} " == *" $a "* ]] && cmd="$a" ;;
  esac
done

# --- JVM options: what the official launcher + capsule pass
declare -a java_opts=(
  -Dfile.encoding=UTF-8
  -Djava.awt.headless=true
  -Dcom.sun.security.enableAIAcaIssuers=true
  --add-opens=java.base/java.lang=ALL-UNNAMED
  --add-opens=java.base/java.io=ALL-UNNAMED
  --add-opens=java.base/java.nio=ALL-UNNAMED
  --add-opens=java.base/java.net=ALL-UNNAMED
  --add-opens=java.base/java.util=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED
  --add-opens=java.base/java.nio.file.spi=ALL-UNNAMED
  --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
  --add-opens=java.base/sun.nio.fs=ALL-UNNAMED
  --add-opens=java.base/sun.net.www.protocol.http=ALL-UNNAMED
  --add-opens=java.base/sun.net.www.protocol.https=ALL-UNNAMED
  --add-opens=java.base/sun.net.www.protocol.ftp=ALL-UNNAMED
  --add-opens=java.base/sun.net.www.protocol.file=ALL-UNNAMED
  --add-opens=java.base/jdk.internal.misc=ALL-UNNAMED
  --add-opens=java.base/jdk.internal.vm=ALL-UNNAMED
  --add-opens=java.base/java.util.regex=ALL-UNNAMED
)
# fast start-up for short-lived commands (the official launcher does the same)
[[ "$cmd" != run && "$cmd" != node ]] && java_opts+=(-XX:+TieredCompilation -XX:TieredStopAtLevel=1)
[[ -n "${NXF_TEMP:-}" ]] && java_opts+=("-Djava.io.tmpdir=$NXF_TEMP")
if [[ -n "${NXF_OPTS:-}" ]]; then read -r -a _split <<<"$NXF_OPTS"; java_opts+=("${_split[@]}"); fi
if [[ -n "${NXF_JVM_ARGS:-}" ]]; then read -r -a _split <<<"$NXF_JVM_ARGS"; java_opts+=("${_split[@]}"); fi
(( ${#jvmopts[@]} )) && java_opts+=("${jvmopts[@]}")

cmdline=("$JAVA_CMD" "${java_opts[@]}" -cp "$NXF_LIB/*" "$NXF_MAIN_CLASS" "${args[@]}")
if [[ -n "$bg" ]]; then
  "${cmdline[@]}" &
  disown
  echo $! >"${NXF_PID_FILE:-.nextflow.pid}"
  exit 0
fi
exec "${cmdline[@]}"
LAUNCHER_BODY
chmod +x "$LAUNCHER.tmp"
cp "$LAUNCHER.tmp" "$LAUNCHER_VER.tmp"
mv "$LAUNCHER_VER.tmp" "$LAUNCHER_VER"

# ------------------------------------------------------------------- verify
log "checking '$LAUNCHER_VER -version'"
if ! out="$("$LAUNCHER_VER" -version 2>&1)"; then
  printf '%s\n' "$out" >&2
  die "launcher failed to start Nextflow $NXF_VERSION"
fi
grep -q "version $NXF_VERSION" <<<"$out" || { printf '%s\n' "$out" >&2; die "unexpected -version output"; }
mv "$LAUNCHER.tmp" "$LAUNCHER"
printf 'version=%s\njars=%s\npins=%s\nexcludes=%s\ndate=%s\n' "$NXF_VERSION" "$njars" \
  "${NXF_PINS[*]+"${NXF_PINS[*]}"}" "${NXF_EXCLUDES[*]+"${NXF_EXCLUDES[*]}"}" "$(date -u +%FT%TZ)" >"$STAMP"
log "Nextflow $NXF_VERSION installed: $LAUNCHER ($njars jars in $LIB)"
