"""Tree search and baselines over reasoning steps: pure Python over a flat tree, no I/O.

Every method has one signature: `fn(prompts, config, *, propose, evaluate, canonical)` returning one
`SearchResult` per prompt. `METHODS` maps a method's name to (function, config class); `POOLED` maps
the sampling methods to their from-a-pool form, so one sample pool serves every budget.
"""

from search.beam import BeamConfig, beam_search, dvts
from search.best_of_n import BestOfNConfig, PRMBestOfNConfig, best_of_n, best_of_n_pool
from search.bfs_v import BFSVConfig, bfs_v
from search.dfs_v import DFSVConfig, dfs_v
from search.mcts_alpha import MCTSAlphaConfig, mcts_alpha
from search.mcts_rollout import MCTSRolloutConfig, mcts_rollout
from search.mcts_star import MCTSStarConfig, mcts_star
from search.sampling import SamplingConfig, greedy, self_consistency, vote_pool
from search.tree import SearchResult, Tree

METHODS = {
    "greedy": (greedy, SamplingConfig),
    "self_consistency": (self_consistency, SamplingConfig),
    "best_of_n_orm": (best_of_n, BestOfNConfig),
    "best_of_n_prm": (best_of_n, PRMBestOfNConfig),
    "beam_prm": (beam_search, BeamConfig),
    "dvts": (dvts, BeamConfig),
    "bfs_v": (bfs_v, BFSVConfig),
    "dfs_v": (dfs_v, DFSVConfig),
    "mcts_alpha": (mcts_alpha, MCTSAlphaConfig),
    "mcts_rollout": (mcts_rollout, MCTSRolloutConfig),
    "mcts_star": (mcts_star, MCTSStarConfig),
}

#: methods that never call the value model
UNGUIDED = {"greedy", "self_consistency"}

#: sampling methods as functions of a sample pool: fn(prompts, pool, config, *, evaluate, canonical)
POOLED = {
    "greedy": vote_pool,  # a pool of one path at temperature 0 (its method config says so)
    "self_consistency": vote_pool,
    "best_of_n_orm": best_of_n_pool,
    "best_of_n_prm": best_of_n_pool,
}

__all__ = ["METHODS", "POOLED", "UNGUIDED", "BFSVConfig", "BeamConfig", "BestOfNConfig", "DFSVConfig",
           "MCTSAlphaConfig", "MCTSRolloutConfig", "MCTSStarConfig", "PRMBestOfNConfig", "SamplingConfig",
           "SearchResult", "Tree", "beam_search", "best_of_n", "bfs_v", "dfs_v", "dvts", "greedy", "mcts_alpha",
           "mcts_rollout", "mcts_star", "self_consistency"]
