"""The seeds' frequency explanations: one analysis tool's outputs over the seeds of each run.

  python -m freqrobust.seeds --tool=hfc --roots=runs/explain_hfc --out=figures
  python -m freqrobust.seeds --tool=dct --roots=runs/adversarial_cpu \
      --groups=natural_cpu,gaussian_cpu,paper_both_att_cpu,pgd_at_cpu

`analyze TOOL` writes one run's arrays (DIR/analysis/TOOL/*.npz); a claim about training needs
them over seeds. This reads them for every run under the roots, groups the runs by name without
`_seed-N` (`freqrobust.runs.parse_name`), and writes per group the mean and the sample standard
deviation over seeds (`seeds_TOOL.json`) and one figure (`seeds_TOOL.png`) whose panels share
their axes and colour scale:

  hfc           accuracy on the low / high parts per radius against the epoch, train and test
                (`analyze hfc --curves`);
  fprinciple    e_low and e_high against the epoch at a few deltas (`analyze fprinciple`);
  perturbation  the centred mean |DFT| of the PGD perturbations (one colour scale), the radial
                profile of the power as a fraction, the half-power radius, RCT per DCT band
                (`analyze perturbation`);
  dct           the drop of the true-class logit per DCT band (`analyze dct`).

Runs of a group must share the tool's grid (epochs, radii, deltas, bands); checkpoints present in
only some seeds are left out with a note (an epoch is kept when every seed has it). Runs without
the tool's output are listed with the command that makes it. The command line is
`freqrobust/seeds.py`; this module holds the functions.
"""
from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from freqrobust import runs as runs_lib
from freqrobust import workdir as workdir_lib
from freqrobust.workdir import UserError

# tool -> (files under DIR/analysis/TOOL/ read per run, as {key: relative path})
TOOL_FILES = {
    "hfc": {"train": "hfc/train/hfc_curves.npz", "test": "hfc/test/hfc_curves.npz"},
    "fprinciple": {"main": "fprinciple/fprinciple.npz"},
    "perturbation": {"main": "perturbation/perturbation.npz"},
    "dct": {"main": "dct/dct_attribution.npz"},
}
# The command that writes a tool's output for one run (named in the error for a missing one).
TOOL_COMMANDS = {
    "hfc": "python -m freqrobust.analyze hfc --workdir={w} --curves",
    "fprinciple": "python -m freqrobust.analyze fprinciple --workdir={w}",
    "perturbation": "python -m freqrobust.analyze perturbation --workdir={w}",
    "dct": "python -m freqrobust.analyze dct --workdir={w}",
}


def find_runs(roots: Sequence[str], tool: str, groups: Sequence[str] = ()) -> Dict[str, Dict]:
  """{group: {"runs": [(seed, workdir)], "missing": [workdir]}} of the run folders (those with a
  results.json) under `roots`, in `groups`' order when given (else sorted)."""
  if tool not in TOOL_FILES:
    raise UserError(f"--tool={tool!r}; valid: {', '.join(TOOL_FILES)}.")
  if not roots:
    raise UserError("--roots is empty: give the folders of runs (a sweep's --root), "
                    "comma-separated, e.g. --roots=runs/explain_hfc.")
  found: Dict[str, Dict] = {}
  for root in roots:
    if not os.path.isdir(root):
      raise FileNotFoundError(f"--roots: {root} is not a folder of runs.")
    for name, workdir in runs_lib.find(root):
      entry = found.setdefault(name.group, {"runs": [], "missing": []})
      files = [os.path.join(workdir, "analysis", f) for f in TOOL_FILES[tool].values()]
      if all(os.path.exists(f) for f in files):
        entry["runs"].append((name.seed, workdir))
      else:
        entry["missing"].append(workdir)
  order = list(groups) if groups else sorted(found)
  unknown = [g for g in order if g not in found]
  if unknown:
    raise FileNotFoundError(f"--groups: no run of {', '.join(unknown)} under "
                            f"{', '.join(roots)} (groups there: {', '.join(sorted(found))}).")
  return {g: found[g] for g in order}


def _load(workdir: str, tool: str) -> Dict[str, Dict[str, np.ndarray]]:
  out = {}
  for key, rel in TOOL_FILES[tool].items():
    with np.load(os.path.join(workdir, "analysis", rel)) as data:
      out[key] = {k: np.asarray(data[k]) for k in data.files}
  return out


def _common_rows(tables: List[Dict[str, np.ndarray]], axis_key: str, notes: List[str],
                 label: str) -> List[Dict[str, np.ndarray]]:
  """Restricts each run's arrays to the values of `axis_key` (e.g. epochs) every run has."""
  values = [np.round(t[axis_key], 6) for t in tables]
  common = sorted(set(values[0].tolist()).intersection(*[set(v.tolist()) for v in values[1:]]))
  union = sorted(set().union(*[set(v.tolist()) for v in values]))
  if len(common) < len(union):
    notes.append(f"{label}: {axis_key} {sorted(set(union) - set(common))} are not in every seed; "
                 "left out")
  out = []
  for t, v in zip(tables, values):
    idx = np.asarray([int(np.nonzero(v == c)[0][0]) for c in common], int)
    out.append({k: (a[idx] if a.ndim >= 1 and a.shape[0] == len(v) else a) for k, a in t.items()})
  return out


def _same_grid(tables: List[Dict[str, np.ndarray]], keys: Sequence[str], label: str) -> None:
  for key in keys:
    first = tables[0][key]
    for t in tables[1:]:
      if t[key].shape != first.shape or not np.allclose(t[key], first):
        raise UserError(f"{label}: the seeds' {key} differ ({first.tolist()} vs "
                         f"{t[key].tolist()}); rerun the tool with the same settings on every "
                         "seed.")


def mean_std(arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
  """Mean and sample standard deviation (ddof 1; 0 for one seed) over the first axis."""
  stack = np.stack([np.asarray(a, np.float64) for a in arrays])
  std = stack.std(axis=0, ddof=1) if len(stack) > 1 else np.zeros(stack.shape[1:])
  return stack.mean(axis=0), std


# Per tool: the grid keys every seed must share, the row key (a checkpoint axis restricted to the
# common values, or None) and the arrays averaged.
_SPECS = {
    "hfc": (("radii",), "epochs", ("low_accuracy", "high_accuracy", "clean_accuracy")),
    "fprinciple": (("deltas",), "epochs", ("e_low", "e_high", "accuracy")),
    "perturbation": (("radii", "band_diagonals"), None,
                     ("mean_abs_spectrum_shifted", "radial_profile", "half_power_radius", "rct")),
    "dct": (("band_diagonals",), None, ("attribution",)),
}


def aggregate(found: Dict[str, Dict], tool: str) -> Dict:
  """{"groups": {group: {"seeds": [...], key: {array: {"mean", "std"}, grid...}}}, "notes"}."""
  grid_keys, row_key, averaged = _SPECS[tool]
  notes: List[str] = []
  groups = {}
  for group, entry in found.items():
    for w in entry["missing"]:
      notes.append(f"{os.path.basename(w)}: no {tool} output; left out "
                   f"({TOOL_COMMANDS[tool].format(w=w)})")
    runs = sorted(entry["runs"], key=lambda r: (r[0] is None, r[0]))
    if not runs:
      continue
    loaded = [_load(w, tool) for _, w in runs]
    out = {"seeds": [s for s, _ in runs], "workdirs": [w for _, w in runs]}
    for key in TOOL_FILES[tool]:
      tables = [l[key] for l in loaded]
      _same_grid(tables, grid_keys, f"{group} ({key})")
      if row_key:
        tables = _common_rows(tables, row_key, notes, f"{group} ({key})")
      part = {k: tables[0][k] for k in grid_keys + ((row_key,) if row_key else ())}
      for name in averaged:
        mean, std = mean_std([t[name] for t in tables])
        part[name] = {"mean": mean, "std": std}
      out[key] = part
    groups[group] = out
  if not groups and not notes:
    raise FileNotFoundError(f"no run has {tool} outputs: no run (a folder with a results.json) "
                            "under the roots; give the folders that hold the runs (a sweep's "
                            "--root).")
  if not groups:
    raise FileNotFoundError(f"no run has {tool} outputs: "
                            + "; ".join(notes[:4]) + ("; ..." if len(notes) > 4 else ""))
  return {"tool": tool, "groups": groups, "notes": notes}


def _band(ax, x, stat, color, label, ls="-"):
  mean, std = np.asarray(stat["mean"]), np.asarray(stat["std"])
  ax.plot(x, mean, ls, color=color, label=label, lw=1.4)
  if np.any(std > 0):
    ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.18, lw=0)


def _title(groups: Dict, labels: Dict[str, str], g: str) -> str:
  seeds = groups[g]["seeds"]
  return f"{labels.get(g, g)} ({len(seeds)} seed{'s' if len(seeds) != 1 else ''})"


def _plot_hfc(plt, groups: Dict, labels: Dict[str, str], max_deltas: int):
  """Accuracy on the low / high parts per radius against the epoch, train and test."""
  names = list(groups)
  fig, axes = plt.subplots(len(names), 2, figsize=(8.4, 2.5 * len(names)), sharex=True,
                           sharey=True, squeeze=False)
  for i, g in enumerate(names):
    for j, split in enumerate(("train", "test")):
      ax, part = axes[i, j], groups[g][split]
      x, radii = part["epochs"], part["radii"]
      _band(ax, x, part["clean_accuracy"], "black", "full image")
      for k, r in enumerate(radii):
        shade = 0.35 + 0.65 * k / max(1, len(radii) - 1)
        low = {s: part["low_accuracy"][s][:, k] for s in ("mean", "std")}
        high = {s: part["high_accuracy"][s][:, k] for s in ("mean", "std")}
        _band(ax, x, low, plt.cm.Blues(shade), f"low, r={r:g}")
        _band(ax, x, high, plt.cm.Reds(shade), f"high, r={r:g}", "--")
      ax.set_title(f"{_title(groups, labels, g)}: {split}", fontsize=8)
      ax.set_ylim(0, 1.02)
      ax.grid(alpha=0.3)
      if i == len(names) - 1:
        ax.set_xlabel("epoch")
      if j == 0:
        ax.set_ylabel("accuracy")
  axes[0, 1].legend(fontsize=6, ncol=2, loc="lower right")
  return fig


def _plot_fprinciple(plt, groups: Dict, labels: Dict[str, str], max_deltas: int):
  """e_low and e_high against the epoch at up to `max_deltas` deltas, a panel per group."""
  names = list(groups)
  fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.0), sharex=True,
                           sharey=True, squeeze=False)
  for j, g in enumerate(names):
    part, ax = groups[g]["main"], axes[0, j]
    deltas = part["deltas"]
    picks = np.unique(np.linspace(0, len(deltas) - 1, min(max_deltas, len(deltas))).astype(int))
    for n, d in enumerate(picks):
      color = plt.cm.viridis(n / max(1, len(picks) - 1) * 0.85)
      for key, ls, name in (("e_low", "-", "e_low"), ("e_high", "--", "e_high")):
        stat = {s: part[key][s][:, d] for s in ("mean", "std")}
        _band(ax, part["epochs"], stat, color, f"{name}, delta={deltas[d]:.3g}", ls)
    ax.set_title(_title(groups, labels, g), fontsize=8)
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
  axes[0, 0].set_ylabel("relative error")
  axes[0, 0].set_ylim(bottom=0)
  axes[0, -1].legend(fontsize=6)
  return fig


def _plot_perturbation(plt, groups: Dict, labels: Dict[str, str], max_deltas: int):
  """The mean |DFT| per group (one colour scale), the radial profile and RCT per DCT band."""
  names = list(groups)
  fig, axes = plt.subplots(1, len(names) + 2, figsize=(3.1 * (len(names) + 2), 3.2),
                           squeeze=False, layout="constrained")
  spectra = [groups[g]["main"]["mean_abs_spectrum_shifted"]["mean"] for g in names]
  spectra = [s.mean(axis=-1) if s.ndim == 3 else s for s in spectra]
  vmax = max(float(s.max()) for s in spectra)
  for j, (g, s) in enumerate(zip(names, spectra)):
    im = axes[0, j].imshow(s, cmap="magma", vmin=0.0, vmax=vmax)
    hp = groups[g]["main"]["half_power_radius"]
    axes[0, j].set_title(f"{_title(groups, labels, g)}\nhalf-power r {float(hp['mean']):.2f} "
                         f"+- {float(hp['std']):.2f}", fontsize=7)
    axes[0, j].set_xticks([])
    axes[0, j].set_yticks([])
  fig.colorbar(im, ax=axes[0, len(names) - 1], fraction=0.05, label="mean |DFT| (one scale)")
  ax_r, ax_b = axes[0, -2], axes[0, -1]
  for n, g in enumerate(names):
    part = groups[g]["main"]
    color = plt.cm.tab10(n)
    prof = part["radial_profile"]
    total = float(np.sum(prof["mean"])) or 1.0
    _band(ax_r, part["radii"], {"mean": prof["mean"] / total, "std": prof["std"] / total},
          color, labels.get(g, g))
    _band(ax_b, np.arange(len(part["rct"]["mean"])), part["rct"], color, labels.get(g, g))
  ax_r.set_xlabel("radius (frequency)")
  ax_r.set_ylabel("fraction of the radial profile")
  ax_r.grid(alpha=0.3)
  ax_b.set_xlabel("DCT band (u + v)")
  ax_b.set_ylabel("RCT")
  ax_b.grid(alpha=0.3)
  ax_b.legend(fontsize=6)
  return fig


def _plot_dct(plt, groups: Dict, labels: Dict[str, str], max_deltas: int):
  """The drop of the true-class logit per DCT band, a curve per group."""
  fig, ax = plt.subplots(figsize=(5.2, 3.3))
  for n, g in enumerate(groups):
    part = groups[g]["main"]
    _band(ax, np.arange(len(part["attribution"]["mean"])), part["attribution"],
          plt.cm.tab10(n), _title(groups, labels, g))
  ax.axhline(0.0, color="gray", lw=0.8)
  ax.set_xlabel("DCT band (a group of diagonals u + v; band 0 holds DC)")
  ax.set_ylabel("drop of the true-class logit")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  return fig


_PLOTS = {"hfc": _plot_hfc, "fprinciple": _plot_fprinciple, "perturbation": _plot_perturbation,
          "dct": _plot_dct}


def plot(summary: Dict, path: str, labels: Optional[Dict[str, str]] = None,
         max_deltas: int = 3) -> str:
  """The tool's figure over the groups (rows or panels share axes and colour scale)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from freqrobust.analysis import plots

  tool = summary["tool"]
  fig = _PLOTS[tool](plt, summary["groups"], labels or {}, max_deltas)
  fig.suptitle(f"{tool}: mean over seeds, band = +-1 sample std", fontsize=9)
  return plots.save_figure(fig, path)


def run(roots: Sequence[str], tool: str, out: str, groups: Sequence[str] = (),
        labels: Optional[Dict[str, str]] = None, name: str = "") -> Dict:
  """Aggregates, writes OUT/seeds_<name or tool>.json and .png; returns the summary."""
  summary = aggregate(find_runs(roots, tool, groups), tool)
  os.makedirs(out, exist_ok=True)
  stem = f"seeds_{name or tool}"
  summary["figure"] = plot(summary, os.path.join(out, f"{stem}.png"), labels)
  with open(os.path.join(out, f"{stem}.json"), "w") as f:
    json.dump(workdir_lib.to_jsonable(summary), f, indent=1)
  return summary


def describe(summary: Dict) -> List[str]:
  """A few text lines per group: the headline numbers with their seed spread."""
  lines = []
  tool = summary["tool"]
  for g, part in summary["groups"].items():
    head = f"{g} (seeds {', '.join(str(s) for s in part['seeds'])})"
    if tool == "hfc":
      for split in ("train", "test"):
        p = part[split]
        last = lambda s: f"{p[s]['mean'][-1] * 100:.1f}"
        lows = ", ".join(f"r={r:g} {p['low_accuracy']['mean'][-1, k] * 100:.1f}"
                         for k, r in enumerate(p["radii"]))
        highs = ", ".join(f"r={r:g} {p['high_accuracy']['mean'][-1, k] * 100:.1f}"
                          for k, r in enumerate(p["radii"]))
        lines.append(f"{head} {split} at epoch {p['epochs'][-1]:g}: full {last('clean_accuracy')}%;"
                     f" low {lows}; high {highs}")
    elif tool == "fprinciple":
      p = part["main"]
      d = len(p["deltas"]) // 2
      lines.append(f"{head} delta {p['deltas'][d]:.3g}: e_low {p['e_low']['mean'][0, d]:.3f} -> "
                   f"{p['e_low']['mean'][-1, d]:.3f}, e_high {p['e_high']['mean'][0, d]:.3f} -> "
                   f"{p['e_high']['mean'][-1, d]:.3f} (epochs {p['epochs'][0]:g} -> "
                   f"{p['epochs'][-1]:g})")
    elif tool == "perturbation":
      p = part["main"]
      lines.append(f"{head}: half-power radius {float(p['half_power_radius']['mean']):.2f} +- "
                   f"{float(p['half_power_radius']['std']):.2f}; RCT band 0..3 "
                   + ", ".join(f"{v:.3f}" for v in p["rct"]["mean"][:4]))
    else:
      p = part["main"]
      a = p["attribution"]["mean"]
      lines.append(f"{head}: drop per band 0..5 " + ", ".join(f"{v:.2f}" for v in a[:6])
                   + f"; the largest at band {int(np.argmax(a))}")
  return lines + [f"note: {n}" for n in summary["notes"]]
