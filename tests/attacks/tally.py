"""What the attack and fault suites did, summed into the one table the issue asks for.

Each test adds its row as it runs; ``tests/attacks/conftest.py`` prints the table at the end
of the session. The zeros in the last five columns are asserted by the tests themselves; the
table is the evidence, not the check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

COLUMNS = (
    ("faults", "faults injected"),
    ("processed", "failures processed"),
    ("lost", "lost"),
    ("duplicated", "remediations duplicated"),
    ("tried", "hostile inputs tried"),
    ("server_errors", "5xx"),
    ("wrongly_accepted", "accepted that should not be"),
    ("leaked", "secrets leaked"),
)


@dataclass
class Tally:
    rows: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, name: str, **counts: int) -> None:
        unknown = set(counts) - {key for key, _ in COLUMNS}
        if unknown:
            raise KeyError(f"unknown columns: {sorted(unknown)}")
        row = self.rows.setdefault(name, {})
        for key, value in counts.items():
            row[key] = row.get(key, 0) + value

    def lines(self) -> list[str]:
        if not self.rows:
            return []
        names = [*self.rows, "total"]
        width = max(len(n) for n in names)
        header = " | ".join([" " * width, *(title for _, title in COLUMNS)])
        out = [header, "-" * len(header)]
        totals = {key: sum(row.get(key, 0) for row in self.rows.values()) for key, _ in COLUMNS}
        for name, row in [*self.rows.items(), ("total", totals)]:
            cells = [str(row.get(key, 0)).rjust(len(title)) for key, title in COLUMNS]
            out.append(" | ".join([name.ljust(width), *cells]))
        return out


TALLY = Tally()
