"""The README's model-zoo table, generated from the registry.

Run ``python -m zoo.table`` to print it; README.md holds its output between
the ``<!-- zoo-table:start -->`` and ``<!-- zoo-table:end -->`` markers (a
test checks they agree).
"""

import inspect

from zoo import registry

_SETTINGS = ("depth", "racecar_weight", "reverse_from", "input_range", "reduction")


def _default_shape(info):
    params = inspect.signature(info.constructor).parameters
    return params["input_shape"].default, params["num_classes"].default


def _reversal(info):
    if not info.reversible:
        return "not reversible"
    d = info.reversal_defaults
    return ", ".join(f"{k}={d[k]}" for k in _SETTINGS if k in d)


def markdown_table():
    """The zoo as a Markdown table: name, paper/table, parameters, reversal defaults.

    Parameters are ``count_params()`` (BatchNormalization's moving statistics
    included) at the constructor's default ``input_shape`` and
    ``num_classes``; every model is built once to count them.

    Returns:
        The table as a string (no trailing newline).
    """
    rows = [
        "| model | paper, table | parameters (input, classes) | paper's reversal defaults |",
        "|---|---|---:|---|",
    ]
    for name in registry.list_models():
        info = registry.info(name)
        shape, classes = _default_shape(info)
        shape = "×".join(str(s) for s in shape)
        rows.append(
            f"| `{name}` | {info.paper}, {info.table} | {info.parameters:,} ({shape}, {classes}) "
            f"| {_reversal(info)} |"
        )
    return "\n".join(rows)


def main():
    print(markdown_table())


if __name__ == "__main__":
    main()
