"""A user's own hook, named by `_target_` from the callbacks group in tests/test_callbacks.py."""

from dlexp.hooks import Hook


class Counter(Hook):
    """Counts the events it sees and keeps the val losses of each copy; writes them to the summary."""

    copies_ok = True

    def __init__(self, tag: str, run_dir: str):
        self.tag, self.run_dir = tag, run_dir
        self.events = {"start": 0, "log": 0, "eval": 0, "step": 0}
        self.val_losses: list[list[float]] = []

    def on_start(self, ctx, loop):
        self.events["start"] += 1

    def on_log(self, ctx, loop):
        self.events["log"] += 1

    def on_eval(self, ctx, loop, improved):
        self.events["eval"] += 1
        self.val_losses.append([c.last_val["loss"] for c in loop.copies])

    def on_step(self, ctx, loop):
        self.events["step"] += 1

    def on_end(self, ctx, loop, summary):
        summary[self.tag] = {"events": self.events, "val_losses": self.val_losses, "run_dir": self.run_dir}


def not_a_hook():
    return 42
