"""The README's model-zoo table, generated from the registry.

Run ``python -m zoo.table`` to print it; README.md holds its output between
the ``<!-- zoo-table:start -->`` and ``<!-- zoo-table:end -->`` markers (a
test checks they agree).
"""

from zoo import registry


def markdown_table():
    """The zoo as a Markdown table: name, paper/table, parameters, reversal defaults.

    Every value is read from the registry entries (``zoo.registry.ModelInfo``):
    parameters are ``count_params()`` (BatchNormalization's moving statistics
    included) at the constructor's default ``input_shape`` and
    ``num_classes``, as the entry records them (a test checks them against
    the built models).

    Returns:
        The table as a string (no trailing newline).
    """
    rows = [
        "| model | paper, table | parameters (input, classes) | paper's reversal defaults |",
        "|---|---|---:|---|",
    ]
    for name in registry.list_models():
        info = registry.info(name)
        shape = "×".join(str(s) for s in info.input_shape)
        rows.append(
            f"| `{name}` | {info.paper}, {info.table} | {info.parameters:,} "
            f"({shape}, {info.num_classes}) | {info.rendered_reversal()} |"
        )
    return "\n".join(rows)


def main():
    print(markdown_table())


if __name__ == "__main__":
    main()
