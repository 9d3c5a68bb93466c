"""Train state, loss, jitted steps, the loop, checkpoints and metrics."""
