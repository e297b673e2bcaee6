#!/usr/bin/env bash
# Apply the low-latency settings that can change at run time (root), printing each change
# and the command that undoes it; then print the kernel boot parameters for the rest.
#
#   tuning/apply.sh [--dry-run] [--profile NAME] [--cores HOT] [--undo-file FILE]
#
# --profile  core layout (tuning/profiles/*.toml, default auto): its busy-spin cores are
#            the "hot" cores to isolate; every core it uses gets the frequency/C-state fix
# --cores    hot cores instead of the profile's (cpu list, e.g. 2-5)
# --dry-run  show what would change; needs no root
# --undo-file  also append every undo command to FILE (a script you can run later)
# `hft tune check` reports the same settings without changing anything.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0 PROFILE=auto HOT="" UNDO_FILE=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --profile) PROFILE=${2:?--profile needs a name}; shift ;;
        --cores) HOT=${2:?--cores needs a cpu list}; shift ;;
        --undo-file) UNDO_FILE=${2:?--undo-file needs a path}; shift ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "apply.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

if [ "$DRY" = 0 ] && [ "$(id -u)" != 0 ]; then
    echo "apply.sh: changing kernel settings needs root; run with sudo, or --dry-run to see them" >&2
    exit 1
fi

PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
profile_cores() { PYTHONPATH=. "$PY" -m tuning.profiles "$PROFILE" "$1"; }
if [ -z "$HOT" ]; then
    HOT=$(profile_cores --hot-cores) || exit 2
fi
ALL=$(profile_cores --all-cores) || exit 2

expand() {  # "2-4,7" -> "2 3 4 7"
    local part out=""
    for part in ${1//,/ }; do
        if [[ $part == *-* ]]; then out+=" $(seq -s ' ' "${part%-*}" "${part#*-}")"
        elif [[ $part =~ ^[0-9]+$ ]]; then out+=" $part"; fi
    done
    echo $out
}
HOT_LIST=$(expand "$HOT")
ALL_LIST=$(echo $(printf '%s\n' $(expand "$ALL") $HOT_LIST | sort -nu))
PRESENT=$(expand "$(cat /sys/devices/system/cpu/present 2>/dev/null || echo 0)")
HOUSEKEEPING=$(for c in $PRESENT; do [[ " $HOT_LIST " == *" $c "* ]] || echo "$c"; done | paste -sd,)
HOUSEKEEPING=${HOUSEKEEPING:-0}
for c in $HOT_LIST; do
    [[ " $PRESENT " == *" $c "* ]] || echo "warning: hot core $c is not present on this host (choose another profile)"
done
mode=$([ "$DRY" = 1 ] && echo "dry run: nothing is changed" || echo "applying")
echo "profile $PROFILE: cores ${ALL_LIST// /,}, hot (busy-spin) cores ${HOT_LIST:-none} ; housekeeping ${HOUSEKEEPING}; $mode"

undo() {
    echo "      undo: $1"
    [ -n "$UNDO_FILE" ] && echo "$1" >> "$UNDO_FILE"
    return 0
}

# set FILE to VALUE (current value shown as the kernel reports it; bracketed for THP)
set_file() {
    local file=$1 new=$2 old
    if [ ! -e "$file" ]; then echo "skip  $file (not on this host)"; return; fi
    old=$(cat "$file" 2>/dev/null) || { echo "skip  $file (unreadable)"; return; }
    [[ $old == *"["*"]"* ]] && old=$(sed 's/.*\[\(.*\)\].*/\1/' <<<"$old")
    if [ "$old" = "$new" ]; then echo "ok    $file = $new"; return; fi
    echo "set   $file: $old -> $new"
    undo "echo '$old' > $file"
    if [ "$DRY" = 0 ] && ! echo "$new" > "$file" 2>/dev/null; then
        echo "      FAILED (the kernel refused it)"
    fi
}

run() {  # run a command that changes something, with its undo
    echo "run   $1"
    undo "$2"
    [ "$DRY" = 1 ] || eval "$1" || echo "      FAILED"
}

echo "== CPU frequency and C-states (cores ${ALL_LIST// /,})"
for c in $ALL_LIST; do
    set_file "/sys/devices/system/cpu/cpu$c/cpufreq/scaling_governor" performance
    for st in /sys/devices/system/cpu/cpu$c/cpuidle/state*; do
        [ -e "$st/latency" ] || continue
        if [ "$(cat "$st/latency")" -gt 2 ]; then set_file "$st/disable" 1; fi
    done
done

echo "== IRQs off the hot cores"
if pgrep -x irqbalance >/dev/null 2>&1; then
    run "systemctl stop irqbalance" "systemctl start irqbalance"
else
    echo "ok    irqbalance not running"
fi
if [ -n "$HOT_LIST" ]; then
    for f in /proc/irq/*/smp_affinity_list; do
        [ -r "$f" ] || continue
        cpus=" $(expand "$(cat "$f")") "
        for c in $HOT_LIST; do
            if [[ $cpus == *" $c "* ]]; then set_file "$f" "$HOUSEKEEPING"; break; fi
        done
    done
else
    echo "ok    no hot cores: IRQ affinity left alone"
fi

echo "== memory"
set_file /sys/kernel/mm/transparent_hugepage/enabled madvise
set_file /sys/kernel/mm/transparent_hugepage/defrag madvise
if [ "$(wc -l < /proc/swaps 2>/dev/null || echo 1)" -gt 1 ]; then
    run "swapoff -a" "swapon -a"
else
    echo "ok    swap off"
fi

echo "== network and scheduler"
set_file /proc/sys/net/core/busy_poll 50
set_file /proc/sys/net/core/busy_read 50
[ -n "$HOT_LIST" ] && set_file /proc/sys/kernel/sched_rt_runtime_us -1
set_file /proc/sys/vm/stat_interval 10

echo "== not changed here"
echo "note  memlock: add '$(id -un) - memlock unlimited' to /etc/security/limits.d/hft.conf (new login)"
echo "note  timer slack is per process: the pipeline sets it (prctl PR_SET_TIMERSLACK) or write 1 to /proc/<pid>/timerslack_ns"
echo "note  SMT: keep the hot cores' sibling threads idle, or disable SMT (echo off > /sys/devices/system/cpu/smt/control)"

HOTC=${HOT_LIST// /,}
echo "== kernel boot parameters (add to GRUB_CMDLINE_LINUX in /etc/default/grub, update-grub, reboot)"
if [ -n "$HOTC" ]; then
    echo "isolcpus=managed_irq,domain,$HOTC nohz_full=$HOTC rcu_nocbs=$HOTC irqaffinity=$HOUSEKEEPING intel_idle.max_cstate=1 processor.max_cstate=1 transparent_hugepage=madvise skew_tick=1 nosoftlockup tsc=reliable"
else
    echo "intel_idle.max_cstate=1 processor.max_cstate=1 transparent_hugepage=madvise skew_tick=1 (the profile has no busy-spin core: no isolation needed)"
fi
