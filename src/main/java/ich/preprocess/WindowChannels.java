package ich.preprocess;

import ich.dicom.FrameTransform;

import java.util.ArrayList;
import java.util.List;

/**
 * The model input channels: fixed windows, and/or the image's own header window ((0028,1050) Window Center
 * and (0028,1051) Window Width, first value), resolved per image.
 */
public final class WindowChannels {
    /** The seed's brain/subdural/soft-tissue stack, channel order R, G, B. */
    public static final WindowChannels BSB = new WindowChannels(List.of(Window.BRAIN, Window.SUBDURAL, Window.SOFT_TISSUE));

    /** Marks the per-image header window in {@link #specs}. */
    private static final Window HEADER = new Window("header", 0, 1, false);
    private static final Window HEADER_SIGMOID = new Window("header", 0, 1, true);

    private final List<Window> specs;

    private WindowChannels(List<Window> specs) {
        if (specs.isEmpty()) throw new IllegalArgumentException("at least one window channel is needed");
        this.specs = List.copyOf(specs);
    }

    public static WindowChannels of(Window... windows) { return new WindowChannels(List.of(windows)); }

    /**
     * "bsb", or a comma-separated list of window specs: brain, subdural, soft, header, header:sigmoid,
     * NAME:CENTER/WIDTH or NAME:CENTER/WIDTH:sigmoid.
     */
    public static WindowChannels parse(String spec) {
        if (spec.equals("bsb")) return BSB;
        List<Window> list = new ArrayList<>();
        for (String s : spec.split(",")) {
            s = s.strip();
            if (s.equals("header")) list.add(HEADER);
            else if (s.equals("header:sigmoid")) list.add(HEADER_SIGMOID);
            else list.add(Window.parse(s));
        }
        return new WindowChannels(list);
    }

    public int count() { return specs.size(); }

    public boolean usesHeaderWindow() { return specs.stream().anyMatch(w -> w == HEADER || w == HEADER_SIGMOID); }

    /** The windows for one frame; the header window needs Window Center/Width in the frame's transform. */
    public Window[] resolve(FrameTransform t, String file) {
        Window[] out = new Window[specs.size()];
        for (int i = 0; i < out.length; i++) {
            Window w = specs.get(i);
            if (w == HEADER || w == HEADER_SIGMOID) {
                if (t.windowCenter().length == 0 || t.windowWidth().length == 0) {
                    throw new IllegalArgumentException(file + ": channel " + i + " wants the header window, but (0028,1050)/(0028,1051) Window Center/Width are absent");
                }
                out[i] = new Window("header", t.windowCenter()[0], t.windowWidth()[0], w.sigmoid());
            } else {
                out[i] = w;
            }
        }
        return out;
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        for (Window w : specs) {
            if (!sb.isEmpty()) sb.append(", ");
            sb.append(w == HEADER ? "header" : w == HEADER_SIGMOID ? "header:sigmoid" : w.toString());
        }
        return sb.toString();
    }
}
