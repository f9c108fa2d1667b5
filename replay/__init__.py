"""wsreplay's replay side: schedules, warps, targets, the runner, the oracle and the CLI."""
