"""The evaluation report's rows as a table: markdown for vis/report.md and the diffusion report, HTML for the page."""
import html

# (row key, column title, format); a column that every row leaves empty is not shown. After the row's name, the
# first few and the last but one describe a training run and its sampler (the benches' rows), the others the images.
COLUMNS = [("row", "row", "{}"), ("config", "configuration", "{}"), ("sampling", "sampling", "{}"),
           ("minutes", "minutes", "{:g}"), ("epochs", "epochs", "{}"), ("guidance", "guidance", "{:g}"),
           ("images_per_s", "train img/s", "{:.0f}"),
           ("n", "n", "{:d}"), ("fd", "FD ↓", "{:.2f}"), ("kid", "KID ↓", "{:.4f}"),
           ("precision", "precision ↑", "{:.3f}"), ("recall", "recall ↑", "{:.3f}"),
           ("grain", "colour grain (photos 1)", "{:.2f}"), ("fd_network", "FD, network only ↓", "{:.2f}"),
           ("nn_distance", "NN dist to train", "{:.2f}"), ("class_accuracy", "class acc", "{:.1%}"),
           ("label_f1", "object F1", "{:.3f}"), ("exact_set_accuracy", "exact set", "{:.1%}"),
           ("mse", "recon MSE ↓", "{:.5f}"), ("psnr", "PSNR dB ↑", "{:.2f}"), ("ssim", "SSIM ↑", "{:.3f}"),
           ("recon_fd", "recon FD ↓", "{:.2f}"), ("recon_recall", "recon recall ↑", "{:.3f}"),
           ("compression", "compression", "{:.0f}x"), ("per_64", "s / 64 samples", "{:.1f}"),
           ("status", "status", "{}")]


def cells(rows):
    """(column titles, one list of cell texts per row): the row's name, its numbers, its status."""
    columns = [c for c in COLUMNS if any(c[0] in row for row in rows)]
    return ([title for _, title, _ in columns],
            [[fmt.format(row[key]) if key in row else "—" for key, _, fmt in columns] for row in rows])


def markdown_table(rows):
    titles, body = cells(rows)
    return "\n".join(["| " + " | ".join(titles) + " |", "|---" * len(titles) + "|",
                      *("| " + " | ".join(line) + " |" for line in body)])


def html_table(rows, table_id="evaluation"):
    titles, body = cells(rows)
    head = "".join(f"<th>{html.escape(title)}</th>" for title in titles)
    lines = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in line) + "</tr>" for line in body)
    return f'<table id="{table_id}"><tr>{head}</tr>{lines}</table>'
