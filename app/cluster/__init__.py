"""cluster.yaml: the model, loading with positions, and every check `validate` runs."""

from pathlib import Path

from app.cluster.checks import check, iter_field_paths
from app.cluster.model import Bootstrap, Cluster, ClusterSpec, Network, Node
from app.cluster.problems import Problem, render
from app.yaml_source import SourceError, load_source


class InvalidConfig(Exception):
    """cluster.yaml has errors; `problems` lists them all."""

    def __init__(self, problems: list[Problem]):
        super().__init__(f"{sum(p.severity == 'error' for p in problems)} error(s) in cluster.yaml")
        self.problems = problems


def load_cluster(path: Path, display: str | None = None) -> tuple[Cluster, list[Problem]]:
    """The Cluster and its warnings; raises SourceError (unreadable) or InvalidConfig."""
    cluster, problems = check(load_source(path), display or str(path))
    if cluster is None:
        raise InvalidConfig(problems)
    return cluster, problems


__all__ = ["Bootstrap", "Cluster", "ClusterSpec", "InvalidConfig", "Network", "Node", "Problem",
           "SourceError", "check", "iter_field_paths", "load_cluster", "load_source", "render"]
