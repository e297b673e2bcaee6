"""Host check: how this host compares with a low-latency setup for the cores a layout uses.

Unprivileged and read-only: it reads /proc/cmdline, /sys and /proc and reports each
setting as ok / warn / info / unknown (a file a VM or container does not have) with what
to change. ``runtime`` findings can be fixed by ``tuning/apply.sh`` (root) without a
reboot; the others need kernel boot parameters (apply.sh prints them).

"Hot" cores are those where the layout busy-spins a process: they should be isolated
from the scheduler, timer ticks, RCU callbacks and IRQs. Every core of the layout should
run at a fixed high frequency without deep C-states.
"""

from __future__ import annotations

import resource
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from tuning.profiles import hot_cores, load_profile

OK, WARN, INFO, UNKNOWN = "ok", "warn", "info", "unknown"
DEEP_CSTATE_US = 2  # exit latency above which a C-state costs a visible wake-up
SLACK_OK_NS = 1_000


@dataclass
class Finding:
    name: str
    status: str
    value: str
    advice: str = ""
    runtime: bool = False  # tuning/apply.sh can change it without a reboot


def parse_cpulist(text: str | None) -> set[int] | None:
    """'0-2,5' -> {0, 1, 2, 5}; flags such as 'managed_irq,domain,' are skipped."""
    if text is None:
        return None
    out: set[int] = set()
    for part in text.strip().split(","):
        part = part.strip()
        if not part or not part[0].isdigit():
            continue
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def cpulist(cores) -> str:
    return ",".join(map(str, sorted(cores))) or "none"


class Host:
    """Reads files under ``root`` (tests point it at a fake tree); None if unreadable."""

    def __init__(self, root: str | Path = "/"):
        self.root = Path(root)

    def read(self, path: str) -> str | None:
        try:
            return (self.root / path.lstrip("/")).read_text().strip()
        except (OSError, UnicodeDecodeError):
            return None

    def glob(self, pattern: str) -> list[Path]:
        return sorted(self.root.glob(pattern.lstrip("/")))

    def cmdline(self) -> dict[str, str]:
        out = {}
        for tok in (self.read("/proc/cmdline") or "").split():
            if tok == "--":
                break
            key, _, value = tok.partition("=")
            out[key] = value
        return out

    def present_cpus(self) -> set[int] | None:
        return parse_cpulist(self.read("/sys/devices/system/cpu/present"))


# ---------------------------------------------------------------------------- checks
def _isolation(host: Host, hot: set[int], name: str, param: str, sysfs: str | None,
               why: str) -> Finding:
    listed = parse_cpulist(host.read(sysfs)) if sysfs else None
    cmd = host.cmdline()
    if listed is None and param in cmd:
        listed = parse_cpulist(cmd[param])
    if listed is None and (host.read("/proc/cmdline") is None):
        return Finding(name, UNKNOWN, "cannot read /proc/cmdline")
    listed = listed or set()
    value = cpulist(listed)
    if not hot:
        return Finding(name, INFO, value, "no busy-spin core in this layout: not needed")
    missing = hot - listed
    if not missing:
        return Finding(name, OK, value)
    return Finding(name, WARN, value, f"boot with {param}={cpulist(hot)} ({why})")


def check_isolcpus(host: Host, cores: set[int], hot: set[int]) -> Finding:
    f = _isolation(host, hot, "isolcpus", "isolcpus", "/sys/devices/system/cpu/isolated",
                   "keeps the scheduler's other tasks off the hot cores")
    if f.status == WARN:
        f.advice = f.advice.replace("isolcpus=", "isolcpus=managed_irq,domain,")
    return f


def check_nohz_full(host: Host, cores: set[int], hot: set[int]) -> Finding:
    return _isolation(host, hot, "nohz_full", "nohz_full", "/sys/devices/system/cpu/nohz_full",
                      "stops the periodic tick on a core running one task")


def check_rcu_nocbs(host: Host, cores: set[int], hot: set[int]) -> Finding:
    return _isolation(host, hot, "rcu_nocbs", "rcu_nocbs", None,
                      "moves RCU callbacks off the hot cores")


def check_governor(host: Host, cores: set[int], hot: set[int]) -> Finding:
    found = {c: host.read(f"/sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor")
             for c in sorted(cores)}
    if all(v is None for v in found.values()):
        return Finding("cpufreq governor", UNKNOWN, "no cpufreq (VM or fixed frequency)")
    value = ", ".join(f"cpu{c}={v or '?'}" for c, v in found.items())
    slow = [c for c, v in found.items() if v not in (None, "performance")]
    if not slow:
        return Finding("cpufreq governor", OK, value)
    return Finding("cpufreq governor", WARN, value,
                   f"set 'performance' on cpu {cpulist(slow)} (frequency ramps add latency)",
                   runtime=True)


def check_cstates(host: Host, cores: set[int], hot: set[int]) -> Finding:
    deep: dict[str, set[int]] = {}
    seen = False
    for c in sorted(cores):
        for state in host.glob(f"/sys/devices/system/cpu/cpu{c}/cpuidle/state*"):
            seen = True
            rel = "/" + str(state.relative_to(host.root))
            latency = host.read(f"{rel}/latency")
            if host.read(f"{rel}/disable") == "1" or latency is None:
                continue
            if int(latency) > DEEP_CSTATE_US:
                deep.setdefault(f"{host.read(f'{rel}/name')} ({latency}us)", set()).add(c)
    driver = host.read("/sys/devices/system/cpu/cpuidle/current_driver") or "?"
    if not seen:
        return Finding("C-states", UNKNOWN, f"no cpuidle states (driver {driver})")
    if not deep:
        return Finding("C-states", OK, f"driver {driver}, no enabled state deeper than "
                       f"{DEEP_CSTATE_US}us")
    value = "; ".join(f"{k} on cpu {cpulist(v)}" for k, v in deep.items())
    return Finding("C-states", WARN, f"driver {driver}: {value}",
                   "disable them (cpuidle stateN/disable) or boot with "
                   "intel_idle.max_cstate=1 processor.max_cstate=1", runtime=True)


def check_smt(host: Host, cores: set[int], hot: set[int]) -> Finding:
    control = host.read("/sys/devices/system/cpu/smt/control") or "unknown"
    shared = {}
    for c in sorted(hot):
        sib = parse_cpulist(host.read(
            f"/sys/devices/system/cpu/cpu{c}/topology/thread_siblings_list"))
        if sib and sib - {c}:
            shared[c] = sib - {c}
    if not hot:
        return Finding("SMT siblings", INFO, f"smt {control}; no busy-spin core in this layout")
    if not shared:
        return Finding("SMT siblings", OK, f"smt {control}; hot cores have no sibling threads")
    value = "; ".join(f"cpu{c} shares its core with {cpulist(s)}" for c, s in shared.items())
    return Finding("SMT siblings", WARN, value, "keep the siblings idle (isolate them too, "
                   "run nothing there) or disable SMT (nosmt / smt/control=off)", runtime=True)


def _irqbalance_running() -> bool:
    for p in psutil.process_iter(["name"]):
        if p.info["name"] == "irqbalance":
            return True
    return False


def check_irqbalance(host: Host, cores: set[int], hot: set[int]) -> Finding:
    try:
        running = _irqbalance_running()
    except psutil.Error:
        return Finding("irqbalance", UNKNOWN, "cannot list processes")
    if not running:
        return Finding("irqbalance", OK, "not running")
    if not hot:
        return Finding("irqbalance", INFO, "running; no busy-spin core in this layout")
    return Finding("irqbalance", WARN, "running",
                   "stop it (it moves IRQs back onto isolated cores) or set "
                   f"IRQBALANCE_BANNED_CPULIST={cpulist(hot)}", runtime=True)


def check_irq_affinity(host: Host, cores: set[int], hot: set[int]) -> Finding:
    files = host.glob("/proc/irq/*/smp_affinity_list")
    if not files:
        return Finding("IRQ affinity", UNKNOWN, "no /proc/irq")
    on_hot, readable = [], 0
    for f in files:
        cpus = parse_cpulist(host.read("/" + str(f.relative_to(host.root))))
        if cpus is None:
            continue
        readable += 1
        if cpus & hot:
            on_hot.append(f.parent.name)
    default = host.read("/proc/irq/default_smp_affinity") or "?"
    if not readable:
        return Finding("IRQ affinity", UNKNOWN, "smp_affinity_list not readable")
    if not hot:
        return Finding("IRQ affinity", INFO, f"{readable} IRQs, default mask {default}; "
                       "no busy-spin core in this layout")
    if not on_hot:
        return Finding("IRQ affinity", OK, f"no IRQ may run on cpu {cpulist(hot)}")
    shown = ", ".join(on_hot[:8]) + (" ..." if len(on_hot) > 8 else "")
    return Finding("IRQ affinity", WARN, f"{len(on_hot)} of {readable} IRQs may run on hot "
                   f"cores (irq {shown})", "move them to the housekeeping cores "
                   "(/proc/irq/N/smp_affinity_list) and boot with irqaffinity=<housekeeping>",
                   runtime=True)


def check_thp(host: Host, cores: set[int], hot: set[int]) -> Finding:
    raw = host.read("/sys/kernel/mm/transparent_hugepage/enabled")
    if raw is None:
        return Finding("transparent huge pages", UNKNOWN, "not available")
    mode = raw.split("[", 1)[1].split("]", 1)[0] if "[" in raw else raw
    if mode in ("never", "madvise"):
        return Finding("transparent huge pages", OK, mode)
    return Finding("transparent huge pages", WARN, mode,
                   "set madvise or never (khugepaged compaction stalls running processes)",
                   runtime=True)


def check_swap(host: Host, cores: set[int], hot: set[int]) -> Finding:
    raw = host.read("/proc/swaps")
    if raw is None:
        return Finding("swap", UNKNOWN, "cannot read /proc/swaps")
    devices = [line.split()[0] for line in raw.splitlines()[1:] if line.strip()]
    swappiness = host.read("/proc/sys/vm/swappiness") or "?"
    if not devices:
        return Finding("swap", OK, f"off (swappiness {swappiness})")
    return Finding("swap", WARN, f"on: {', '.join(devices)} (swappiness {swappiness})",
                   "swapoff -a (or lock memory: RunnerConfig.lock_memory)", runtime=True)


def check_timer_slack(host: Host, cores: set[int], hot: set[int]) -> Finding:
    raw = host.read("/proc/self/timerslack_ns")
    if raw is None:
        return Finding("timer slack", UNKNOWN, "no /proc/self/timerslack_ns")
    slack = int(raw)
    if slack <= SLACK_OK_NS:
        return Finding("timer slack", OK, f"{slack} ns")
    return Finding("timer slack", WARN, f"{slack:,} ns (this process; inherited)",
                   "backoff parks oversleep by up to this much: start the pipeline with "
                   "prctl(PR_SET_TIMERSLACK, 1) or write 1 to /proc/<pid>/timerslack_ns")


def check_busy_poll(host: Host, cores: set[int], hot: set[int]) -> Finding:
    poll = host.read("/proc/sys/net/core/busy_poll")
    read = host.read("/proc/sys/net/core/busy_read")
    if poll is None and read is None:
        return Finding("NIC busy-poll", UNKNOWN, "net.core.busy_poll/busy_read not visible")
    value = f"busy_poll={poll} busy_read={read}"
    if poll not in (None, "0") and read not in (None, "0"):
        return Finding("NIC busy-poll", OK, value)
    return Finding("NIC busy-poll", WARN, value, "sysctl net.core.busy_poll=50 "
                   "net.core.busy_read=50 (sockets poll the NIC instead of waiting for an IRQ)",
                   runtime=True)


def check_memlock(host: Host, cores: set[int], hot: set[int]) -> Finding:
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)

    def show(v: int) -> str:
        return "unlimited" if v == resource.RLIM_INFINITY else f"{v // 1024:,} KiB"

    value = f"soft {show(soft)}, hard {show(hard)}"
    if soft == resource.RLIM_INFINITY:
        return Finding("memlock limit", OK, value)
    return Finding("memlock limit", WARN, value, "mlockall needs it unlimited: "
                   "'<user> - memlock unlimited' in /etc/security/limits.d/hft.conf "
                   "(or LimitMEMLOCK=infinity in a systemd unit)")


def check_clocksource(host: Host, cores: set[int], hot: set[int]) -> Finding:
    current = host.read("/sys/devices/system/clocksource/clocksource0/current_clocksource")
    if current is None:
        return Finding("clocksource", UNKNOWN, "not visible")
    available = host.read(
        "/sys/devices/system/clocksource/clocksource0/available_clocksource") or ""
    if current == "tsc":
        return Finding("clocksource", OK, "tsc (clock reads through the vDSO)")
    if current in ("kvm-clock", "hyperv_clocksource_tsc_page", "arch_sys_counter"):
        return Finding("clocksource", INFO, f"{current} (vDSO-capable)",
                       "tsc is cheaper if reliable: clocksource=tsc tsc=reliable"
                       if "tsc" in available.split() else "")
    return Finding("clocksource", WARN, f"{current} (available: {available})",
                   "clock reads are system calls: boot with clocksource=tsc tsc=reliable "
                   "if the TSC is invariant", runtime="tsc" in available.split())


def check_rt_throttling(host: Host, cores: set[int], hot: set[int]) -> Finding:
    raw = host.read("/proc/sys/kernel/sched_rt_runtime_us")
    if raw is None:
        return Finding("RT throttling", UNKNOWN, "not visible")
    if raw == "-1":
        return Finding("RT throttling", OK, "off")
    return Finding("RT throttling", INFO, f"sched_rt_runtime_us={raw}",
                   "with SCHED_FIFO busy-spinners: sysctl kernel.sched_rt_runtime_us=-1",
                   runtime=True)


CHECKS = (check_isolcpus, check_nohz_full, check_rcu_nocbs, check_governor, check_cstates,
          check_smt, check_irqbalance, check_irq_affinity, check_thp, check_swap,
          check_timer_slack, check_busy_poll, check_memlock, check_clocksource,
          check_rt_throttling)


def run_checks(profile: str = "auto", hot: set[int] | None = None,
               root: str | Path = "/") -> dict:
    """The report: profile, cores, hot cores, findings (as dicts), and ``untuned``."""
    layout = load_profile(profile)
    cores = {spec["core"] for spec in layout.values()}
    hot = set(hot_cores(layout)) if hot is None else set(hot)
    cores |= hot
    host = Host(root)
    findings = []
    present = host.present_cpus()
    if present is not None and cores - present:
        findings.append(Finding("cores", WARN, f"layout uses cpu {cpulist(cores)}; host has "
                                f"{cpulist(present)}", "choose a profile that fits this host"))
    for check in CHECKS:
        try:
            findings.append(check(host, cores, hot))
        except (OSError, ValueError) as e:  # a malformed file: report, never fail
            findings.append(Finding(check.__name__[6:], UNKNOWN, f"unreadable: {e}"))
    return {"profile": profile, "layout": layout, "cores": sorted(cores), "hot_cores": sorted(hot),
            "findings": [asdict(f) for f in findings],
            "untuned": any(f.status == WARN for f in findings)}


def warn_if_untuned(profile: str = "auto", stream=None, root: str | Path = "/") -> bool:
    """For ``run.sh``: print a short warning when the host is not tuned; never raises,
    never refuses. Returns True if it warned."""
    stream = stream or sys.stderr
    try:
        report = run_checks(profile, root=root)
    except Exception as e:  # noqa: BLE001 - a launch must not fail on a check
        print(f"warning: host tuning check failed ({e})", file=stream)
        return True
    warns = [f["name"] for f in report["findings"] if f["status"] == WARN]
    if not warns:
        return False
    print(f"warning: host not tuned for low latency ({len(warns)}: {', '.join(warns)}); "
          f"latency figures will be noisy. `hft tune check` says what to change.", file=stream)
    return True
