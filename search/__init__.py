"""Tree search and baselines over reasoning steps: pure Python over a flat tree, no I/O.

Every method has one signature: `fn(prompts, config, *, propose, evaluate, canonical)` returning one
`SearchResult` per prompt. `METHODS` maps a method's name to (function, config class).
"""

from search.bfs_v import BFSVConfig, bfs_v
from search.mcts_alpha import MCTSAlphaConfig, mcts_alpha
from search.sampling import SamplingConfig, greedy, self_consistency
from search.tree import SearchResult, Tree

METHODS = {
    "greedy": (greedy, SamplingConfig),
    "self_consistency": (self_consistency, SamplingConfig),
    "mcts_alpha": (mcts_alpha, MCTSAlphaConfig),
    "bfs_v": (bfs_v, BFSVConfig),
}

__all__ = ["METHODS", "BFSVConfig", "MCTSAlphaConfig", "SamplingConfig", "SearchResult", "Tree", "bfs_v",
           "greedy", "mcts_alpha", "self_consistency"]
