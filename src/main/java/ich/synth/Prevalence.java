package ich.synth;

import ich.labels.Subtype;

import java.util.Arrays;
import java.util.Locale;

/**
 * Target label rates per image (slice), in {@link Subtype} order: {@code any} first, then the five subtypes.
 * What the generator aims for; what it reaches is reported after a run.
 *
 * <p>The default is the RSNA stage-1 training set (4,045,572 rows, 674,258 images after merging duplicates):
 * any 14.4 %, epidural 0.41 %, intraparenchymal 4.83 %, intraventricular 3.52 %, subarachnoid 4.76 %, subdural
 * 6.30 %. The subtypes add up to 19.8 %, more than {@code any}: a positive slice shows 1.38 subtypes on average.
 *
 * <p>A set of rates is possible when each subtype is at most {@code any} (a slice with a subtype is a positive
 * slice) and {@code any} is at most the sum of the subtypes ({@code any} is their OR).
 */
public record Prevalence(double[] rates) {
    public static final Prevalence RSNA_STAGE_1 = new Prevalence(new double[]{0.144, 0.0041, 0.0483, 0.0352, 0.0476, 0.0630});

    public Prevalence {
        if (rates.length != Subtype.COUNT) throw new IllegalArgumentException(rates.length + " rates, 6 expected");
        rates = rates.clone();
        double sum = 0;
        for (int s = 1; s < Subtype.COUNT; s++) {
            if (!(rates[s] >= 0 && rates[s] <= rates[0])) {
                throw new IllegalArgumentException(Subtype.of(s).csvName() + " rate " + rates[s] + " must be within [0, any = " + rates[0] + "]");
            }
            sum += rates[s];
        }
        if (!(rates[0] >= 0 && rates[0] <= 1)) throw new IllegalArgumentException("any rate " + rates[0] + " must be within [0, 1]");
        if (rates[0] > sum + 1e-12) {
            throw new IllegalArgumentException("any rate " + rates[0] + " exceeds the sum of the subtype rates " + sum
                    + ": any is the OR of the subtypes");
        }
    }

    public double rate(Subtype s) { return rates[s.ordinal()]; }

    @Override
    public double[] rates() { return rates.clone(); }

    /** All six rates scaled so that {@code any} becomes {@code anyRate}: the RSNA mix of subtypes at another prevalence. */
    public Prevalence withAnyRate(double anyRate) {
        if (rates[0] == 0) throw new IllegalArgumentException("cannot scale rates whose any is 0");
        double f = anyRate / rates[0];
        double[] r = rates.clone();
        for (int s = 0; s < r.length; s++) r[s] *= f;
        r[0] = anyRate;
        return new Prevalence(r);
    }

    /** The same rates with one changed. */
    public Prevalence with(Subtype s, double rate) {
        double[] r = rates.clone();
        r[s.ordinal()] = rate;
        return new Prevalence(r);
    }

    @Override
    public boolean equals(Object o) { return o instanceof Prevalence p && Arrays.equals(rates, p.rates); }

    @Override
    public int hashCode() { return Arrays.hashCode(rates); }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        for (Subtype s : Subtype.values()) {
            sb.append(sb.isEmpty() ? "" : ", ").append(s.csvName()).append(' ').append(String.format(Locale.ROOT, "%.4g", rates[s.ordinal()]));
        }
        return sb.toString();
    }
}
