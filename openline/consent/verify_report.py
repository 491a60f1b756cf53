"""What a verification of the consent registry found: its problems and a summary."""

from __future__ import annotations

from dataclasses import dataclass, field

from openline.consent.checkpoints import VerifiedCheckpoint


@dataclass
class Problem:
    # altered | removed | inserted | refused | backdated | future | orphaned | text | batch
    # | checkpoint
    kind: str
    record_id: int | None
    message: str


@dataclass
class VerifyReport:
    batches: int = 0
    records: int = 0  # sealed records checked
    unsealed: int = 0  # records in the pending tail (checked too)
    misplaced: int = 0  # rows neither sealed nor pending: refused by the sealer or slipped in
    total_batches: int = 0
    total_records: int = 0  # rows in the record table when verification started
    stopped_early: bool = False
    checkpoint: VerifiedCheckpoint | None = None
    kept: list[VerifiedCheckpoint] = field(default_factory=list)  # every line of a push file
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    @property
    def checked(self) -> int:
        """Return how many records were checked so far (sealed and pending)."""
        return self.records + self.unsealed + self.misplaced

    def summary(self) -> str:
        """Say what was checked; after an early stop, say so and how far it got."""
        if self.stopped_early:
            return (
                f"stopped at the first problem after {self.batches} of {self.total_batches} "
                f"batches and {self.checked} of {self.total_records} records; the rest was "
                "not checked (run with --all to check everything)."
            )
        text = (
            f"{self.batches} batches, {self.records} sealed records, "
            f"{self.unsealed} not sealed yet."
        )
        if self.misplaced:
            text = text[:-1] + f", {self.misplaced} neither sealed nor pending."
        if len(self.kept) > 1:
            covered = not any(p.kind == "checkpoint" for p in self.problems)
            text += (
                f" {len(self.kept)} kept checkpoints (#{self.kept[0].batch_number} to "
                f"#{self.kept[-1].batch_number}): "
                + ("everything they covered is still here." if covered else "NOT covered.")
            )
        elif self.checkpoint is not None:
            covered = not any(p.kind == "checkpoint" for p in self.problems)
            text += (
                f" Checkpoint #{self.checkpoint.batch_number} of {self.checkpoint.issued_at}: "
                + ("everything it covered is still here." if covered else "NOT covered.")
            )
        return text
