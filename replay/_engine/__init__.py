"""The engine core, sans-IO: schedule, network model, warp, transcript, oracle, verdict, diff.

Plain functions over plain data: no Trio, no sockets, no clock."""
