// Panel loads this bundle by URL and picks the module named after the Python class.
import * as ZoneMap from "./zone_map.js"
export default {ZoneMap}
