"""Backend channels: one live connection to a backend, per client session (or shared, modern era)."""

from app.proxy.channels.base import BackendUnavailable, Channel, ChannelListener, ChannelMode

__all__ = ["BackendUnavailable", "Channel", "ChannelListener", "ChannelMode"]
