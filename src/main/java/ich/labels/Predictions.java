package ich.labels;

import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * Predicted probabilities per image: image ids in a fixed order and, per image, six probabilities in
 * {@link Subtype} order, each finite and within [0, 1]. Immutable.
 */
public final class Predictions {
    private final ImageIdIndex ids;
    private final float[] probabilities;

    /**
     * @param imageIds      distinct image ids, e.g. {@code ID_0fbf6a978}
     * @param probabilities {@code imageIds.size() * 6} values, image after image, in {@link Subtype} order
     */
    public Predictions(List<String> imageIds, float[] probabilities) {
        this(ImageIdIndex.of(imageIds), probabilities.clone());
    }

    /** Takes ownership of both. */
    Predictions(ImageIdIndex ids, float[] probabilities) {
        if (probabilities.length != (long) ids.size() * Subtype.COUNT) {
            throw new IllegalArgumentException(probabilities.length + " probabilities for " + ids.size() + " images: expected 6 per image");
        }
        for (int i = 0; i < probabilities.length; i++) {
            float p = probabilities[i];
            if (!(p >= 0 && p <= 1)) {  // also catches NaN
                throw new IllegalArgumentException("probability " + p + " for " + ids.id(i / Subtype.COUNT) + "_"
                        + Subtype.of(i % Subtype.COUNT).csvName() + " is not within [0, 1]");
            }
        }
        this.ids = ids;
        this.probabilities = probabilities;
    }

    public int images() { return ids.size(); }

    public String imageId(int image) { return ids.id(image); }

    public List<String> imageIds() { return ids.ids(); }

    /** The number of this image, or -1. */
    public int indexOf(String imageId) { return ids.indexOf(imageId); }

    public float probability(int image, Subtype subtype) {
        return probabilities[image * Subtype.COUNT + subtype.ordinal()];
    }

    ImageIdIndex index() { return ids; }

    float probabilityAt(int cell) { return probabilities[cell]; }

    @Override
    public boolean equals(Object o) {
        return o instanceof Predictions p && imageIds().equals(p.imageIds()) && Arrays.equals(probabilities, p.probabilities);
    }

    @Override
    public int hashCode() { return Objects.hash(imageIds(), Arrays.hashCode(probabilities)); }

    @Override
    public String toString() { return "Predictions[" + images() + " images]"; }
}
