package ich.synth;

import ich.labels.Subtype;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;

import static ich.synth.SliceRenderer.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Each subtype's blood looks like its kind, on studies given one lesion of known shape: where it lies (which
 * tissue it replaces, whether it touches the skull), how thick it is, and across which slices it shows.
 */
class SliceRendererTest {
    static final int SIZE = 256;

    /** A study without tilt and its slice nearest mid-brain (half the head's height). */
    record Setting(SynthStudy study, int mid) {}

    static Setting setting(long seed) {
        for (SynthStudy s : SynthDataset.plan(SynthConfig.of(Path.of("unused"), 40, 30, seed).withSize(SIZE))) {
            if (s.acquisition().tiltSin() != 0) continue;
            int mid = 0;
            double best = 1;
            for (int k = 0; k < s.slices(); k++) {
                double d = Math.abs(s.acquisition().centreZ(k) / s.anatomy().height() - 0.52);
                if (d < best) {
                    best = d;
                    mid = k;
                }
            }
            if (mid >= 3 && mid <= s.slices() - 4) return new Setting(s, mid);
        }
        throw new AssertionError("no untilted study with room around mid-brain");
    }

    static SynthStudy with(SynthStudy s, Lesion... lesions) {
        return new SynthStudy(s.index(), s.seed(), s.patient(), s.patientId(), s.studyInstanceUid(), s.seriesInstanceUid(),
                s.imageIds(), s.anatomy(), s.acquisition(), List.of(lesions), s.test());
    }

    /** Blood pixels of a subtype and, of them, those with a 4-neighbour of the given tissue, or of no blood. */
    record Blood(int pixels, int touching, int edge, double meanU, double meanV) {}

    static Blood blood(SynthStudy s, SliceRenderer.Slice slice, Subtype t, byte touchingTissue) {
        int bit = t.bit(), n = 0, touching = 0, edge = 0;
        double su = 0, sv = 0;
        Acquisition a = s.acquisition();
        for (int j = 1; j < SIZE - 1; j++) {
            for (int i = 1; i < SIZE - 1; i++) {
                int p = j * SIZE + i;
                if ((slice.lesionMask()[p] & bit) == 0) continue;
                n++;
                su += a.rowU(j) + i * a.du();
                sv += a.rowV(j) + i * a.dv();
                boolean touches = false, onEdge = false;
                for (int q : new int[]{p - 1, p + 1, p - SIZE, p + SIZE}) {
                    touches |= slice.tissue()[q] == touchingTissue && slice.lesionMask()[q] == 0;
                    onEdge |= (slice.lesionMask()[q] & bit) == 0;
                }
                if (touches) touching++;
                if (onEdge) edge++;
            }
        }
        return new Blood(n, touching, edge, n == 0 ? 0 : su / n, n == 0 ? 0 : sv / n);
    }

    @Test
    void epiduralIsAThickLensOnTheSkullSubduralAThinCrescent() {
        Setting set = setting(1);
        int k = set.mid();
        SynthStudy edh = with(set.study(), new Lesion.Convexity(Subtype.EPIDURAL, k - 1, k + 1, 70, 0, 0.3, 16));
        SynthStudy sdh = with(set.study(), new Lesion.Convexity(Subtype.SUBDURAL, k - 1, k + 1, 70, Math.PI, 1.0, 6));
        SliceRenderer r = new SliceRenderer(SIZE);
        Blood e = blood(edh, r.render(edh, k), Subtype.EPIDURAL, BONE);
        Blood d = blood(sdh, r.render(sdh, k), Subtype.SUBDURAL, BONE);
        assertTrue(e.pixels() > 0 && d.pixels() > 0);
        assertTrue(e.touching() > 10 && d.touching() > 10, "both lie against the inner table: " + e + " " + d);
        // Mean thickness: area over the length along the skull.
        double px = edh.acquisition().pixelSpacing();
        double edhThickness = e.pixels() * px / e.touching(), sdhThickness = d.pixels() * px / d.touching();
        assertTrue(edhThickness > 2 * sdhThickness, "lens " + edhThickness + " mm vs crescent " + sdhThickness + " mm");
        assertTrue(d.touching() > 1.8 * e.touching(), "the crescent runs longer along the skull");
        assertTrue(e.meanU() > 0 && d.meanU() < 0, "on the side asked for: angle 0 is the patient's left (+u)");
    }

    @Test
    void subarachnoidBloodFillsThinCsfSpacesOnly() {
        Setting set = setting(2);
        int k = set.mid();
        double r = 0.8 * set.study().anatomy().brainRadius(Math.PI / 2, set.study().acquisition().centreZ(k));
        SynthStudy s = with(set.study(), new Lesion.Subarachnoid(k - 1, k + 1, 70, 0, r, 35, 25));
        SliceRenderer.Slice slice = new SliceRenderer(SIZE).render(s, k);
        Blood b = blood(s, slice, Subtype.SUBARACHNOID, CSF);
        assertTrue(b.pixels() > 0);
        for (int p = 0; p < slice.lesionMask().length; p++) {
            if (slice.lesionMask()[p] != 0) assertEquals(CSF, slice.tissue()[p], "subarachnoid blood lies in CSF spaces, not the ventricles");
        }
        assertTrue(b.edge() > 0.5 * b.pixels(), "thin lines along sulci: most blood pixels border non-blood " + b);
    }

    @Test
    void intraparenchymalIsABlobInTheBrainWithOedema() {
        Setting set = setting(3);
        int k = set.mid();
        SynthStudy s = with(set.study(), new Lesion.Parenchymal(k - 2, k + 2, 75, -25, -20, 12, 0.15, 4));
        SliceRenderer.Slice slice = new SliceRenderer(SIZE).render(s, k);
        Blood b = blood(s, slice, Subtype.INTRAPARENCHYMAL, EDEMA);
        double area = b.pixels() * Math.pow(s.acquisition().pixelSpacing(), 2);
        assertTrue(area > Math.PI * 12 * 12 * 0.5 && area < Math.PI * 12 * 12 * 1.5, "about the radius asked for: " + area + " mm2");
        assertEquals(-25, b.meanU(), 3);
        assertEquals(-20, b.meanV(), 3);
        assertTrue(b.touching() > 0.3 * b.edge(), "oedema around much of it: " + b);
        for (int p = 0; p < slice.lesionMask().length; p++) {
            if (slice.lesionMask()[p] == 0) continue;
            byte t = slice.tissue()[p];
            assertTrue(t == GREY || t == WHITE || t == DEEP_GREY || t == CSF, "in the brain, not " + tissueName(t));
        }
        assertTrue(blood(s, slice, Subtype.INTRAPARENCHYMAL, BONE).touching() == 0, "not against the skull");
    }

    @Test
    void intraventricularBloodLayersBehindAFluidLevel() {
        Setting set = setting(4);
        int k = set.mid();
        SynthStudy level = with(set.study(), new Lesion.Ventricular(k - 1, k + 1, 70, 0.2));
        SynthStudy cast = with(set.study(), new Lesion.Ventricular(k - 1, k + 1, 70, -1));
        SliceRenderer r = new SliceRenderer(SIZE);
        SliceRenderer.Slice castSlice = r.render(cast, k);
        Blood whole = blood(cast, castSlice, Subtype.INTRAVENTRICULAR, VENTRICLE);
        int ventricle = 0;
        for (int p = 0; p < castSlice.tissue().length; p++) if (castSlice.tissue()[p] == VENTRICLE) ventricle++;
        assertEquals(ventricle, whole.pixels(), "a cast fills the ventricles");
        SliceRenderer.Slice levelSlice = r.render(level, k);
        Blood layered = blood(level, levelSlice, Subtype.INTRAVENTRICULAR, VENTRICLE);
        assertTrue(layered.pixels() > 0 && layered.pixels() < 0.7 * whole.pixels(), layered + " of " + whole);
        assertTrue(layered.touching() > 0, "clear CSF in front of the level");
        assertTrue(layered.meanV() > whole.meanV() + 2, "the blood lies behind (posterior, +v): the patient lies on the back");
    }

    @Test
    void lesionsSpanTheirSlicesOnly() {
        Setting set = setting(5);
        int k = set.mid();
        SynthStudy s = with(set.study(), new Lesion.Convexity(Subtype.SUBDURAL, k - 2, k + 2, 65, 0.3, 0.9, 9),
                new Lesion.Parenchymal(k - 1, k + 1, 80, -25, -10, 10, 0.1, 3));
        SliceRenderer r = new SliceRenderer(SIZE);
        for (int slice = k - 4; slice <= k + 4; slice++) {
            int bits = r.render(s, slice).labelBits();
            boolean sdh = Math.abs(slice - k) <= 2, iph = Math.abs(slice - k) <= 1;
            assertEquals(sdh, (bits & Subtype.SUBDURAL.bit()) != 0, "subdural on slice " + slice);
            assertEquals(iph, (bits & Subtype.INTRAPARENCHYMAL.bit()) != 0, "intraparenchymal on slice " + slice);
            assertEquals(sdh || iph, (bits & Subtype.ANY.bit()) != 0, "any on slice " + slice);
            assertEquals(s.plannedLabels(slice), bits, "as planned on slice " + slice);
        }
        assertTrue(s.lesions().getFirst().profile(k) > s.lesions().getFirst().profile(k + 2), "largest in the middle");
    }

    @Test
    void noBloodWithoutLesionsAndRenderingIsRepeatable() {
        Setting set = setting(6);
        SliceRenderer r = new SliceRenderer(SIZE), other = new SliceRenderer(SIZE);
        SynthStudy clean = with(set.study());
        for (int k = 0; k < clean.slices(); k++) {
            SliceRenderer.Slice a = r.render(clean, k);
            assertEquals(0, a.labelBits());
            for (byte m : a.lesionMask()) assertEquals(0, m);
        }
        short[] first = r.render(set.study(), set.mid()).hu().clone();
        other.render(clean, 0);  // another state before
        assertArrayEquals(first, other.render(set.study(), set.mid()).hu());
    }
}
