"""The Explorer page: graph, step-through, inspector, panels under the graph, fork, export."""
