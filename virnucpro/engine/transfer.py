"""How a batch's results come back from the device, and how the device's memory cache is released.

The device loop only needs three things from the device beyond the forward pass: start bringing a result to the host
without waiting (:meth:`send`), ask whether it has arrived (``ready``) and take it (``wait``). Keeping them behind
this small interface lets the loop's scheduling (several batches in flight, in-order landing, OOM back-off) run and be
tested on any device: :class:`SyncTransfer` on CPU (the forward is synchronous, so results are there at once),
:class:`CudaTransfer` on a GPU (pinned host buffer, ``non_blocking`` copy, an event recorded on the device's stream).
A test can hand the loop a transfer whose results arrive late to exercise several batches in flight on CPU.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch


class Ticket(Protocol):
    """One result on its way to the host."""

    def ready(self) -> bool:
        """True when :meth:`wait` would not block."""

    def wait(self) -> np.ndarray:
        """Block until the result is on the host; the float32 ``[n, dim]`` rows."""


class Transfer(Protocol):
    """The device side the loop talks to (see the module docstring)."""

    #: results may still be on their way when :meth:`send` returns (the loop may then queue several batches)
    asynchronous: bool
    #: host batches should be in pinned memory (their copies to the device are then asynchronous too)
    pin: bool

    def send(self, means: torch.Tensor, keep: tuple) -> Ticket:
        """Start bringing ``means`` to the host; ``keep`` stays referenced until the result has landed."""

    def empty_cache(self) -> None:
        """Give cached, unused device memory back after an out-of-memory (called once the failed batch is freed)."""


class _Done:
    def __init__(self, values: torch.Tensor) -> None:
        self.values = values

    def ready(self) -> bool:
        return True

    def wait(self) -> np.ndarray:
        return self.values.numpy()


class SyncTransfer:
    """CPU: the forward pass has finished when ``step`` returns, so the result is already on the host."""

    asynchronous = False
    pin = False

    def send(self, means: torch.Tensor, keep: tuple) -> Ticket:
        return _Done(means)

    def empty_cache(self) -> None:
        pass


class _CudaTicket:
    def __init__(self, host: torch.Tensor, event: "torch.cuda.Event", keep: tuple) -> None:
        self.host, self.event, self.keep = host, event, keep

    def ready(self) -> bool:
        return bool(self.event.query())

    def wait(self) -> np.ndarray:
        self.event.synchronize()
        return self.host.numpy()


class CudaTransfer:
    """GPU: copy into pinned host memory with ``non_blocking=True``; an event marks when that copy is done."""

    asynchronous = True
    pin = True

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def send(self, means: torch.Tensor, keep: tuple) -> Ticket:
        host = torch.empty(means.shape, dtype=torch.float32, pin_memory=True)
        host.copy_(means, non_blocking=True)
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(self.device))  # the stream of THIS device, not the current device's
        return _CudaTicket(host, event, (*keep, means))

    def empty_cache(self) -> None:
        torch.cuda.empty_cache()


def transfer_for(device: torch.device) -> Transfer:
    """The transfer a run on ``device`` uses."""
    return CudaTransfer(device) if device.type == "cuda" else SyncTransfer()
