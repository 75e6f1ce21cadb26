#!/usr/bin/env bash
# Install (or remove) the steel-inspect edge daemon as a systemd service on a line PC.
#
#   sudo systemd/install.sh [--extras edge[,console][,tensorrt]] [--python python3.11] [--wheel-dir DIR]
#   sudo systemd/install.sh --uninstall [--purge]
#   systemd/install.sh --root /tmp/stage --no-install      # lay out the files only, under a root
#
# Creates the system user steel-inspect, a venv in /opt/steel-inspect/venv with this repository and
# its extras (tensorrt is added when nvidia-smi exists), the example configuration
# /etc/steel-inspect/edge.toml (an existing one is kept), an empty credential file
# /etc/steel-inspect/mqtt-password, and the unit steel-inspect-edge.service (enabled, not started)
# beside steel-inspect-console.service (installed, not enabled).
# Running it again gives the same result. --uninstall removes the unit, the venv and the docs but
# keeps the configuration and the data (/var/lib/steel-inspect); --purge removes those too.
# With --root DIR nothing outside DIR is touched: no user is created (the sysusers.d entry is
# written), systemctl is not called (the enable symlink is made by hand), no ownership changes.
set -euo pipefail

UNIT=steel-inspect-edge.service
# the inspection console: installed, not enabled (`systemctl enable --now` it where wanted)
CONSOLE_UNIT=steel-inspect-console.service
USER_NAME=steel-inspect
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

root=/
extras=edge,console
python=""
wheel_dir=""
install_packages=1
action=install
purge=0

die() { echo "install.sh: error: $*" >&2; exit 2; }
say() { echo "install.sh: $*"; }

usage() { sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --root) [ $# -ge 2 ] || die "--root needs a folder"; root="$2"; shift 2 ;;
        --root=*) root="${1#*=}"; shift ;;
        --extras) [ $# -ge 2 ] || die "--extras needs a list"; extras="$2"; shift 2 ;;
        --extras=*) extras="${1#*=}"; shift ;;
        --python) [ $# -ge 2 ] || die "--python needs an interpreter"; python="$2"; shift 2 ;;
        --python=*) python="${1#*=}"; shift ;;
        --wheel-dir) [ $# -ge 2 ] || die "--wheel-dir needs a folder"; wheel_dir="$2"; shift 2 ;;
        --wheel-dir=*) wheel_dir="${1#*=}"; shift ;;
        --no-install) install_packages=0; shift ;;
        --uninstall) action=uninstall; shift ;;
        --purge) purge=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
[ "$purge" = 0 ] || [ "$action" = uninstall ] || die "--purge goes with --uninstall"

case "$root" in /*) ;; *) die "--root must be an absolute path (got '$root')" ;; esac
mkdir -p "$root"
root="$(cd "$root" && pwd -P)"
on_host=0
[ "$root" = / ] && on_host=1
prefix="${root%/}"   # "" for the host, so "$prefix/etc" is /etc

opt_dir="$prefix/opt/steel-inspect"
venv="$opt_dir/venv"
etc_dir="$prefix/etc/steel-inspect"
unit_path="$prefix/etc/systemd/system/$UNIT"
wants_link="$prefix/etc/systemd/system/multi-user.target.wants/$UNIT"
console_unit_path="$prefix/etc/systemd/system/$CONSOLE_UNIT"
sysusers_file="$prefix/usr/lib/sysusers.d/$USER_NAME.conf"
state_dir="$prefix/var/lib/steel-inspect"
cache_dir="$prefix/var/cache/steel-inspect"

if [ "$on_host" = 1 ] && [ "$(id -u)" != 0 ]; then
    die "run as root (sudo), or stage the files with --root DIR"
fi

add_extra() {
    case ",$extras," in *",$1,"*) ;; *) extras="$extras,$1" ;; esac
}

# --- install -----------------------------------------------------------------------------------

write_sysusers() {
    mkdir -p "$(dirname "$sysusers_file")"
    cat > "$sysusers_file" <<EOF
# steel-inspect edge daemon (systemd/install.sh); data in /var/lib/steel-inspect
u $USER_NAME - "steel-inspect edge daemon" /var/lib/steel-inspect -
EOF
    chmod 0644 "$sysusers_file"
    if [ "$on_host" = 1 ] && ! getent passwd "$USER_NAME" >/dev/null; then
        say "creating system user $USER_NAME"
        local group_option=--user-group
        getent group "$USER_NAME" >/dev/null && group_option="--gid=$USER_NAME"
        useradd --system "$group_option" --home-dir /var/lib/steel-inspect --no-create-home \
            --shell /usr/sbin/nologin --comment "steel-inspect edge daemon" "$USER_NAME"
    fi
}

pick_python() {
    if [ -n "$python" ]; then
        command -v "$python" >/dev/null || die "--python $python: not found"
        return
    fi
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null; then python="$candidate"; return; fi
    done
    die "no python3.11 found; install it (apt-get install -y python3.11 python3.11-venv) or pass --python"
}

# TensorRT 10 dropped Pascal (GTX 10xx, compute capability 6.x): older GPUs get 8.6.1, the last
# release that builds engines for them; newer ones 10.x (11 removed the API the builder uses; the
# cap must match edge.inference.manifest.SUPPORTED_TENSORRT_MAJORS, tests/test_tensorrt_api.py checks it).
tensorrt_pin() {
    case ",$extras," in *,tensorrt,*) ;; *) return ;; esac
    command -v nvidia-smi >/dev/null || return 0
    local cap
    cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' ')"
    case "$cap" in
        [0-6].*|7.[0-4]) echo "tensorrt==8.6.1" ;;
        "") ;;
        *) echo "tensorrt>=10,<11" ;;
    esac
}

install_venv() {
    local pin
    pin="$(tensorrt_pin)"
    if [ "$install_packages" = 0 ]; then
        say "--no-install: would install steel-inspect[$extras] ${pin:+($pin) }into $venv"
        return
    fi
    pick_python
    local version
    version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    [ "$version" = 3.11 ] || die "$python is Python $version; steel-inspect needs 3.11 (TensorRT 8.6 wheels)"
    if [ ! -x "$venv/bin/python" ]; then
        say "creating $venv with $python"
        mkdir -p "$opt_dir"
        "$python" -m venv "$venv"
    fi
    say "installing steel-inspect[$extras] ${pin:+($pin) }into $venv"
    if [ -n "$wheel_dir" ]; then
        "$venv/bin/python" -m pip install -q --no-index --find-links "$wheel_dir" \
            "steel-inspect[$extras]" $pin
    else
        "$venv/bin/python" -m pip install -q --upgrade pip
        "$venv/bin/python" -m pip install -q "$REPO[$extras]" $pin
    fi
    "$venv/bin/edge" --help >/dev/null
}

install_docs() {
    mkdir -p "$opt_dir/docs"
    install -m 0644 "$REPO"/docs/*.md "$opt_dir/docs/"
}

install_config() {
    mkdir -p "$etc_dir"
    chmod 0750 "$etc_dir"
    # the shipped example, refreshed on every install, to compare with after an upgrade
    install -m 0640 "$REPO/edge/example.toml" "$etc_dir/edge.toml.example"
    if [ -e "$etc_dir/edge.toml" ]; then
        say "keeping the existing $etc_dir/edge.toml"
    else
        install -m 0640 "$REPO/edge/example.toml" "$etc_dir/edge.toml"
        say "wrote $etc_dir/edge.toml from the example: edit it, then start the service"
    fi
    if [ ! -e "$etc_dir/mqtt-password" ]; then
        # LoadCredential= fails the start if the file is missing; empty = no password in it yet
        install -m 0600 /dev/null "$etc_dir/mqtt-password"
    fi
    if [ "$on_host" = 1 ]; then
        # the service (user steel-inspect) reads the config; the password only via LoadCredential
        chown root:"$USER_NAME" "$etc_dir" "$etc_dir/edge.toml" "$etc_dir/edge.toml.example"
        chown root:root "$etc_dir/mqtt-password"
    fi
}

install_state() {
    # the model store, so `sudo -u steel-inspect edge model install` works before the first start
    # (systemd's StateDirectory= keeps the same folder and owner)
    mkdir -p "$state_dir/models"
    chmod 0750 "$state_dir" "$state_dir/models"
    if [ "$on_host" = 1 ]; then
        chown "$USER_NAME:$USER_NAME" "$state_dir" "$state_dir/models"
    fi
}

install_unit() {
    mkdir -p "$(dirname "$unit_path")"
    install -m 0644 "$REPO/systemd/$UNIT" "$unit_path"
    install -m 0644 "$REPO/systemd/$CONSOLE_UNIT" "$console_unit_path"
    if [ "$on_host" = 1 ]; then
        systemctl daemon-reload
        systemctl enable "$UNIT"
    else
        mkdir -p "$(dirname "$wants_link")"
        ln -sfn "/etc/systemd/system/$UNIT" "$wants_link"
    fi
}

do_install() {
    if command -v nvidia-smi >/dev/null; then
        add_extra tensorrt
    fi
    write_sysusers
    install_venv
    install_docs
    install_config
    install_state
    install_unit
    say "installed $UNIT (enabled, not started) under $root"
    if [ "$on_host" = 1 ]; then
        say "next: edit /etc/steel-inspect/edge.toml, run"
        say "  sudo -u $USER_NAME $venv/bin/edge check --config /etc/steel-inspect/edge.toml"
        say "  sudo systemctl start $UNIT"
    fi
}

# --- uninstall ---------------------------------------------------------------------------------

do_uninstall() {
    if [ "$on_host" = 1 ]; then
        systemctl disable --now "$UNIT" 2>/dev/null || true
        systemctl disable --now "$CONSOLE_UNIT" 2>/dev/null || true
    fi
    rm -f "$wants_link" "$unit_path" "$console_unit_path"
    if [ "$on_host" = 1 ]; then
        systemctl daemon-reload
        systemctl reset-failed "$UNIT" 2>/dev/null || true
    fi
    # models and engines an operator put in /opt/steel-inspect stay, like the data
    rm -rf "$venv" "$opt_dir/docs"
    rmdir "$opt_dir" 2>/dev/null || true
    say "removed $UNIT, $venv and $opt_dir/docs"
    if [ "$purge" = 1 ]; then
        rm -rf "$etc_dir" "$state_dir" "$cache_dir" "$opt_dir"
        rm -f "$sysusers_file"
        local who="the sysusers.d entry of $USER_NAME"
        if [ "$on_host" = 1 ] && getent passwd "$USER_NAME" >/dev/null; then
            userdel "$USER_NAME"
            who="the user $USER_NAME"
        fi
        say "purged $etc_dir, $state_dir, $cache_dir, $opt_dir and $who"
    else
        say "kept $etc_dir, $state_dir (the outbox) and any models; --purge removes them"
    fi
}

if [ "$action" = install ]; then
    do_install
else
    do_uninstall
fi
