"""The pure hierarchical DRF allocator: `allocate(state, now_ns, config)` -> offers to make."""

from meseta.master.allocator.config import AllocatorConfig, parse_min_allocatable
from meseta.master.allocator.cycle import Allocation, allocate

__all__ = ["Allocation", "AllocatorConfig", "allocate", "parse_min_allocatable"]
