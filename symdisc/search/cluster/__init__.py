"""`symdisc evolve --cluster`: the Ray scale-out, in three parts.

``connect`` finds or starts a cluster, ``supervise`` keeps the actors alive, ``loop`` overlaps
generation and evaluation; ``actors`` is what runs inside them.
"""

from symdisc.search.cluster.loop import ClusterEvolution
from symdisc.search.cluster.supervise import Cluster

__all__ = ["Cluster", "ClusterEvolution"]
