/**
 * The RSNA label files: training labels in ({@link ich.labels.LabelCsv}, pivoted to a
 * {@link ich.labels.LabelTable}), sample submissions and submissions in and out ({@link ich.labels.SubmissionCsv}).
 *
 * <p>All of them are {@code ID,Label} CSVs whose ID is {@code IMAGE_SUBTYPE}: the subtype is the last
 * {@code _} token and one of {@link ich.labels.Subtype}; the image id is everything before it, opaque bytes
 * (RSNA uses {@code ID_} and 9 hex digits; nothing here relies on that). Decisions, documented where made:
 * labels are 0 or 1 (also 0.0 and 1.0); identical duplicate rows are merged and counted, conflicting ones are
 * an error; every image needs all six subtypes; an optional UTF-8 BOM and CRLF line ends are accepted;
 * submission probabilities are written in plain notation with six significant digits of min(p, 1 - p).
 *
 * <p>Reading works on bytes (no String per line) at several million lines per second on one core.
 */
package ich.labels;
